"""The 2019 conclusions decided from records by the rules stated in node_experiments/study_conclusions.py."""
import pytest

from helpers import study_script
from node_experiments import study_conclusions as sc
from node_experiments.study_record import Curves, StudyRecord


def record(name, valid, seconds_per_update=1.0, nfe=None, skips=(), status="plateau", bleu=None, flags=()):
    """A record with validation losses {update: loss} and NFE {key: {update: value}} logged every 50 updates."""
    updates = sorted(valid)
    best_at = min(updates, key=lambda u: valid[u])
    nfe = nfe or {}
    train_updates = sorted({u for values in nfe.values() for u in values})
    return StudyRecord(
        experiment=name, flags=list(flags), status=status, updates=max(updates), best_valid_loss=valid[best_at],
        best_at_update=best_at, seconds_per_update=seconds_per_update, train_hours=1.0,
        train=Curves(train_updates, {key: [values.get(u) for u in train_updates] for key, values in nfe.items()}),
        valid=Curves(updates, {"loss": [valid[u] for u in updates]}), budget_skips=list(skips),
        translation={"test2016_flickr": {"tokenized_bleu": bleu, "sacrebleu": bleu}} if bleu is not None else {})


def rising(first, last, end=4000):
    """NFE logged every 50 updates, flat at FIRST until half-way, then LAST."""
    return {u: (first if u <= end // 2 else last) for u in range(50, end + 1, 50)}


def curve(start, end=4000, slope=0.0005):
    return {u: start - slope * u for u in range(200, end + 1, 200)}


@pytest.fixture
def records():
    r = {
        "transformer_1layer": record("transformer_1layer", curve(5.0), 0.6, bleu=38.0),
        "node_separated_aug1": record("node_separated_aug1", curve(5.3), 2.0, bleu=33.0,
                                      nfe={"nfe_dec_fwd": rising(14, 20)}),
        "node_full_tol1e-2": record("node_full_tol1e-2", curve(5.6), 4.0, bleu=30.0,
                                    nfe={"nfe_enc_fwd": rising(20, 20.4), "nfe_dec_fwd": rising(14, 18)}),
        sc.FULL_NODE: record(sc.FULL_NODE, curve(5.6, 3000), 5.0, status="update cap",
                             nfe={"nfe_enc_fwd": rising(20, 20.4, 3000), "nfe_dec_fwd": rising(14, 18, 3000)}),
        "node_fast_separated_euler": record("node_fast_separated_euler", curve(5.2), 0.6, bleu=35.0,
                                            nfe={"nfe_dec_fwd": rising(1, 1)}),
        "node_decoder_aug1": record("node_decoder_aug1", curve(5.32, 3000), 3.0, skips=[1200], status="update cap",
                                    nfe={"nfe_dec_fwd": rising(14, 22, 3000)}),
        "node_full_tol1e-2_adjoint_2019bug": record("node_full_tol1e-2_adjoint_2019bug", curve(6.0, 1800), 5.0,
                                                    flags=["--node-detach-encoder"],
                                                    nfe={"nfe_enc_fwd": rising(14, 14, 1800),
                                                         "nfe_dec_fwd": rising(14, 400, 1800)}),
        "node_separated_aug1_timedep": record("node_separated_aug1_timedep", curve(5.0, 3000), 2.0),
        "node_separated_aug1_weightdecay": record("node_separated_aug1_weightdecay", curve(5.4, 3000), 2.0,
                                                  nfe={"nfe_dec_fwd": rising(14, 16, 3000)}),
    }
    return r


def by_number(conclusions):
    return {c.number: c for c in conclusions}


def test_each_conclusion_is_decided_by_its_rule(records):
    checked = by_number(sc.check(records))
    assert checked["0"].verdict == sc.REPRODUCED and "BLEU 33.00" in checked["0"].evidence
    assert checked["1"].verdict == sc.REPRODUCED  # the best NODE (Euler, 3.2) is 0.2 behind the 1-layer's 3.0
    assert "best NODE run node_fast_separated_euler: 3.200" in checked["1"].evidence and "gap +0.200" in checked["1"].evidence
    assert checked["2"].verdict == sc.REPRODUCED and "node_full_tol1e-2: 6.7x per update" in checked["2"].evidence
    assert checked["3"].verdict == sc.REPRODUCED and "decoder 14.0 → 20.0 (+43%)" in checked["3"].evidence
    assert checked["4"].verdict == sc.REPRODUCED  # read on the full NODE whose gradient is the ODE's, not tol 1e-2
    # the ablation with the 2019 bug is shown beside it (its encoder learns nothing through the decoder)
    assert checked["4"].evidence == ("node_full_tol1e-2_adjoint: enc 20.0 → 20.4 (+2%), dec 14.0 → 18.0 (+29%); with "
                                     "the 2019 gradient bug, node_full_tol1e-2_adjoint_2019bug: enc 14.0 → 14.0 (+0%), "
                                     "dec 14.0 → 400.0 (+2757%)")
    # each row that reads the adjoint's full NODE says, after its evidence, how far its gradient is the ODE's
    assert {n for n, c in checked.items() if c.caveat == sc.FULL_NODE_GRADIENT} == {"4", "8", "tol", "bug"}
    assert not any(c.caveat for n, c in checked.items() if n not in ("4", "8", "tol", "bug"))
    for table in (sc.markdown(list(checked.values())), sc.markdown(list(checked.values()), rules=False)):
        assert f"| {checked['4'].evidence}; {sc.FULL_NODE_GRADIENT} |" in table
    assert checked["6"].verdict == sc.REPRODUCED
    assert checked["6"].evidence == ("node_decoder_aug1 (correct gradient): 1 batches over the step budget in 3000 "
                                     "updates; node_full_tol1e-2_adjoint_2019bug (with the 2019 gradient bug): 0 "
                                     "batches over the step budget in 1800 updates")
    # separated: 2/3 of the cost, and at update 3000 its 3.8 against the full decoder's 3.82: level
    assert checked["7"].verdict == sc.REPRODUCED and "0.67x the cost per update" in checked["7"].evidence
    assert checked["9"].verdict == sc.REFUTED  # time dependence 0.3 below its base at update 3000: it helped
    assert "node_separated_aug1_timedep 3.500, node_separated_aug1 3.800" in checked["9"].evidence
    # weight decay: NFE 16 against 20 (-20%) and 0.1 higher: both halves
    assert checked["10"].verdict == sc.REPRODUCED and "decoder NFE there: 16.0 against 20.0" in checked["10"].evidence
    for number in ("8", "tol", "bug"):
        assert checked[number].verdict == sc.NOT_TESTABLE and "no record of" in checked[number].evidence


def test_conclusion_6_names_the_gradient_of_the_run_that_refined_forever(records):
    records["node_decoder_aug1"].budget_skips = []
    assert by_number(sc.check(records))["6"].verdict == sc.REFUTED  # no batch of either over the budget
    reason = ("NODETrainingStopped: 10 consecutive batches exceeded the solver budget, last at update 1500: step "
              "budget max_num_steps=1000 exceeded (decoder forward solve reached t=0.7 after 1000 steps, 6004 "
              "function evaluations); the dynamics have likely blown up (raise --node-max-num-steps)")
    bugged = records["node_full_tol1e-2_adjoint_2019bug"]
    bugged.status, bugged.updates, bugged.budget_skips = f"stopped: {reason}", 1500, list(range(1491, 1501))
    six = by_number(sc.check(records))["6"]
    assert six.verdict == sc.REPRODUCED
    assert six.evidence.endswith("node_full_tol1e-2_adjoint_2019bug (with the 2019 gradient bug): 10 batches over "
                                 f"the step budget in 1500 updates, stopped: {reason.split('; ')[0]}")
    assert "blown up" not in six.evidence and "node_decoder_aug1 (correct gradient): 0 batches" in six.evidence
    bugged.status, bugged.budget_skips = "stopped: FloatingPointError: Minimum loss scale reached", []
    assert by_number(sc.check(records))["6"].verdict == sc.REFUTED  # stopped, but not by the solver's budget
    del records["node_full_tol1e-2_adjoint_2019bug"]  # still training: the row shows what is in, and waits
    six = by_number(sc.check(records))["6"]
    assert six.verdict == sc.NOT_TESTABLE and six.partial
    assert six.evidence == ("node_decoder_aug1 (correct gradient): 0 batches over the step budget in 3000 updates; "
                            "no record of node_full_tol1e-2_adjoint_2019bug yet")
    records["node_decoder_aug1"].budget_skips = [1200]  # a run in decides it without the other
    assert by_number(sc.check(records))["6"].verdict == sc.REPRODUCED


def test_a_flat_decoder_or_a_rising_encoder_refutes_conclusion_4(records):
    full = records[sc.FULL_NODE]
    full.train.values["nfe_enc_fwd"] = [v * (1.5 if u > 2000 else 1) for u, v in
                                        zip(full.train.updates, full.train.values["nfe_enc_fwd"])]
    assert by_number(sc.check(records))["4"].verdict == sc.REFUTED
    records["node_separated_aug1"].best_valid_loss = records["transformer_1layer"].best_valid_loss - 0.3
    assert by_number(sc.check(records))["1"].verdict == sc.REFUTED  # a NODE run ahead of the 1-layer


def test_a_run_short_of_the_compared_update_leaves_it_undecided(records):
    for status in ("training", "update cap", "stopped: FloatingPointError: Minimum loss scale reached"):
        records["node_separated_aug1_timedep"] = record("node_separated_aug1_timedep", curve(5.0, 2000), 2.0,
                                                        status=status)
        nine = by_number(sc.check(records))["9"]
        assert nine.verdict == sc.NOT_TESTABLE
        assert "node_separated_aug1_timedep has no validation at update 3000" in nine.evidence


def test_a_run_that_stopped_on_its_plateau_before_the_compared_update_stands_at_its_best(records):
    # The base's best is 8.0 at update 400; --patience stopped it at 800, before the compared update 1000.
    assert sc.CAPPED_UPDATES == 1000
    stalled = {200: 9.7, 400: 8.0, 600: 8.8, 800: 8.05}
    records[sc.FULL_NODE] = record(sc.FULL_NODE, stalled, 4.0, status="plateau",
                                   nfe={"nfe_enc_fwd": rising(20, 20, 800), "nfe_dec_fwd": rising(14, 32, 800)})
    tight_nfe = {"nfe_enc_fwd": rising(30, 30, 1000), "nfe_dec_fwd": rising(20, 28, 1000)}
    records["node_full_tol1e-3_adjoint"] = record("node_full_tol1e-3_adjoint", curve(5.5, 1000), 5.0,
                                                  status="update cap", nfe=tight_nfe)
    tol = by_number(sc.check(records))["tol"]
    assert tol.verdict == sc.REPRODUCED  # 1e-3 is 5.0 at update 1000 against 1e-2's best, 8.0: 1e-2 ends worse
    assert tol.evidence == ("node_full_tol1e-3_adjoint costs 1.2x per update; valid loss at update 1000: "
                            "node_full_tol1e-2_adjoint 8.000 (its best: on its plateau since update 400, stopped at "
                            "800), node_full_tol1e-3_adjoint 5.000")
    records["node_full_tol1e-3_adjoint"] = record("node_full_tol1e-3_adjoint", curve(8.49, 1000), 5.0,
                                                  status="update cap", nfe=tight_nfe)
    assert by_number(sc.check(records))["tol"].verdict == sc.REFUTED  # 7.99 against 8.0: level


def test_a_run_its_solver_budget_stopped_before_the_compared_update_stands_at_its_best(records):
    # The base's best is 6.9 at update 800; its solves' step budget stopped it at 970, before update 1000.
    reason = ("NODETrainingStopped: 10 consecutive batches exceeded the solver budget, last at update 970: step "
              "budget max_num_steps=1000 exceeded (encoder backward solve reached t=0.4 after 1001 steps)")
    records[sc.FULL_NODE] = record(sc.FULL_NODE, {200: 9.0, 400: 7.5, 600: 7.1, 800: 6.9}, 4.0,
                                   status=f"stopped: {reason}", skips=list(range(961, 970)),
                                   nfe={"nfe_enc_fwd": rising(14, 700, 950), "nfe_dec_fwd": rising(14, 500, 950)})
    records["node_full_aug1_adjoint"] = record("node_full_aug1_adjoint", curve(6.1, 1000), 5.0, status="update cap",
                                               nfe={"nfe_enc_fwd": rising(20, 14, 1000),
                                                    "nfe_dec_fwd": rising(14, 20, 1000)})
    checked = by_number(sc.check(records))
    assert checked["8"].verdict == sc.REFUTED  # the augmented run's 5.6 at update 1000 against the base's 6.9
    assert checked["8"].evidence == ("valid loss at update 1000: node_full_aug1_adjoint 5.600, node_full_tol1e-2_adjoint "
                                     "6.900 (its best, at update 800: its solves' step budget stopped it before update "
                                     "1000)")
    assert checked["4"].verdict == sc.REFUTED  # its encoder's NFE rose 14 -> 700 before the stop
    # a crash says nothing of where the run would stand
    records[sc.FULL_NODE].status = "stopped: FloatingPointError: Minimum loss scale reached"
    eight = by_number(sc.check(records))["8"]
    assert eight.verdict == sc.NOT_TESTABLE and eight.evidence == "node_full_tol1e-2_adjoint has no validation at update 1000"


def test_the_kinetic_row_needs_the_rise_the_drop_and_level_quality(records):
    # The demo's run is node_separated_aug1 (the fixture's: NFE 14 -> 20 by update 3000, valid loss 3.8 there).
    records["demo_kinetic"] = record("demo_kinetic", curve(5.32, 3000), 2.0, nfe={"nfe_dec_fwd": rising(14, 15, 3000)})
    kinetic = by_number(sc.check(records))["kinetic"]
    assert kinetic.verdict == sc.REPRODUCED  # 14 -> 20 (+43%), kinetic 15 there (-25%), 0.02 behind: level
    assert kinetic.evidence == ("node_separated_aug1's decoder NFE 14.0 → 20.0 (+43%) by update 3000, demo_kinetic's "
                                "15.0 there; valid loss at update 3000: demo_kinetic 3.820, node_separated_aug1 3.800")
    records["demo_kinetic"] = record("demo_kinetic", curve(5.5, 3000), 2.0, nfe={"nfe_dec_fwd": rising(14, 15, 3000)})
    assert by_number(sc.check(records))["kinetic"].verdict == sc.REFUTED  # 0.2 behind: it cost quality
    records["demo_kinetic"] = record("demo_kinetic", curve(5.3, 3000), 2.0, nfe={"nfe_dec_fwd": rising(14, 19, 3000)})
    assert by_number(sc.check(records))["kinetic"].verdict == sc.REFUTED  # level, but 19 against 20: not lower
    records[sc.DEMO_RUN] = record(sc.DEMO_RUN, curve(5.3), 2.0, nfe={"nfe_dec_fwd": rising(14, 14.5)})
    records["demo_kinetic"] = record("demo_kinetic", curve(5.3, 3000), 2.0, nfe={"nfe_dec_fwd": rising(14, 12, 3000)})
    assert by_number(sc.check(records))["kinetic"].verdict == sc.REFUTED  # no rise to keep lower
    records["demo_kinetic"] = record("demo_kinetic", curve(5.3, 3000), 2.0, nfe={"nfe_dec_fwd": rising(14, 12, 2500)})
    undecided = by_number(sc.check(records))["kinetic"]  # its NFE logged up to update 2500 only
    assert undecided.verdict == sc.NOT_TESTABLE and undecided.evidence == "no decoder NFE logged up to update 3000 yet"


def test_the_bug_row_shows_each_ablation_as_it_finishes_and_decides_on_all(records):
    # The bases at update 3000: node_separated_aug1 3.8, node_full_tol1e-2_adjoint 4.1.
    del records["node_full_tol1e-2_adjoint_2019bug"]
    records["node_separated_aug1_2019bug"] = record("node_separated_aug1_2019bug", curve(6.3, 3000), 2.0,
                                                    nfe={"nfe_dec_fwd": rising(14, 25, 3000)})
    bug = by_number(sc.check(records))["bug"]
    assert bug.verdict == sc.NOT_TESTABLE and bug.partial
    assert bug.evidence == ("valid loss at update 3000: node_separated_aug1_2019bug 4.800, node_separated_aug1 3.800 "
                            "(+1.000); no record of node_full_tol1e-2_adjoint_2019bug yet")
    row = next(line for line in sc.markdown([bug]).splitlines() if line.startswith("| bug |"))
    assert "**not testable yet**" in row and row.endswith("(figures/gradient_bug/best_valid_loss_vs_updates.png) |")
    records["node_full_tol1e-2_adjoint_2019bug"] = record("node_full_tol1e-2_adjoint_2019bug", curve(5.63, 3000), 4.0,
                                                  nfe={"nfe_dec_fwd": rising(14, 18, 3000)})
    bug = by_number(sc.check(records))["bug"]
    assert bug.verdict == sc.REFUTED and not bug.partial  # the full ablation is 0.03 behind: level
    assert "node_full_tol1e-2_adjoint_2019bug 4.130, node_full_tol1e-2_adjoint 4.100 (+0.030)" in bug.evidence
    records["node_full_tol1e-2_adjoint_2019bug"] = record("node_full_tol1e-2_adjoint_2019bug", curve(5.9, 3000), 4.0,
                                                  nfe={"nfe_dec_fwd": rising(14, 18, 3000)})
    assert by_number(sc.check(records))["bug"].verdict == sc.REPRODUCED  # both behind by more than 0.05
    del records["node_separated_aug1"]  # a base missing: its pair waits, the other pair still shows
    bug = by_number(sc.check(records))["bug"]
    assert bug.verdict == sc.NOT_TESTABLE and bug.evidence.startswith("no record of node_separated_aug1 yet; ")


def test_each_section_shows_the_rows_its_figures_decide(records):
    checked = sc.check(records)
    assert [c.number for c in sc.in_section(checked, "nfe")] == ["3", "4"]
    assert [c.number for c in sc.in_section(checked, "augmentation")] == ["8"]
    assert [c.number for c in sc.in_section(checked, "gradient_bug")] == ["6", "bug"]
    assert sc.in_section(checked, "depth") == []
    assert sum(len(sc.in_section(checked, section)) for section in sc.SECTIONS) == len(checked)
    with pytest.raises(KeyError, match="no section 'nfe_rise'"):
        sc.in_section(checked, "nfe_rise")


def test_the_table_links_the_figures_of_decided_rows_only(records):
    table = sc.markdown(sc.check(records))
    assert "| 4 | The decoder's NFE rises, the encoder's stays flat | **reproduced** |" in table
    assert "[nfe/nfe.png](figures/nfe/nfe.png)" in table
    eight = next(line for line in table.splitlines() if line.startswith("| 8 |"))
    assert eight.endswith("| - |") and "**not testable yet**" in eight
    assert set(sc.SECTIONS) >= {c.figure.split("/")[0] for c in sc.check(records) if c.figure}


@pytest.mark.slow
def test_the_converged_notebook_executes_from_records_alone(records, tmp_path):
    import os

    import nbformat
    from nbclient import NotebookClient

    from helpers import REPO
    from node_experiments.study_record import write

    for r in records.values():
        write(r, tmp_path / "records")
    notebook = nbformat.read(REPO / "notebooks" / "converged_study.ipynb", as_version=4)
    os.environ.update(NODE_CONVERGED_RECORDS=str(tmp_path / "records"), NODE_CONVERGED_OUT=str(tmp_path / "figures"))
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    finally:
        del os.environ["NODE_CONVERGED_RECORDS"], os.environ["NODE_CONVERGED_OUT"]
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "node_separated_aug1 (plateau, 4000 updates)" in text
    assert "transformer_tiny has no translated record yet" in text and "no record yet: demo_kinetic\n" in text
    # in its section ("NFE while the model learns") and in the whole table at the end
    assert markdown.count("| 4 | The decoder's NFE rises, the encoder's stays flat | **reproduced** |") == 2
    assert (tmp_path / "figures" / "node_vs_1layer" / "best_valid_loss_vs_updates.png").stat().st_size > 0
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 9


def test_a_record_without_the_numbers_a_row_reads_leaves_it_undecided(records):
    records["node_full_tol1e-2"] = record("node_full_tol1e-2", curve(5.6), 4.0, flags=["--node-encoder"])  # no NFE
    records["transformer_1layer"].seconds_per_update = None  # stopped before it logged a speed
    checked = by_number(sc.check(records))
    assert checked["3"].verdict == sc.NOT_TESTABLE and checked["3"].evidence == "node_full_tol1e-2 logged no NFE yet"
    assert checked["2"].evidence == "transformer_1layer logged no validation or speed yet"


def test_every_experiment_a_conclusion_or_section_reads_is_in_the_plan_and_has_a_config():
    from helpers import REPO

    study = study_script()
    planned = {name for _, names in study.CONVERGED_PLAN for name in names}
    read = {name for template, _ in sc.CHECKS for name in template.experiments}
    read |= {name for names in sc.SECTIONS.values() for name in names}
    assert read <= planned, read - planned
    assert all((REPO / "configs" / f"{name}.args").is_file() for name in planned)
    plateau = {name for cap, names in study.CONVERGED_PLAN if cap is None for name in names}
    assert sc.LAYER_EXPERIMENT in plateau  # the layer function's row is decided at its plateau
    assert {"transformer_tiny", "transformer_1layer", "node_separated_aug1", "node_full_tol1e-2"} <= plateau
    assert len(planned) == sum(len(names) for _, names in study.CONVERGED_PLAN)  # each experiment planned once


def test_each_row_compares_at_an_update_the_plan_trains_its_runs_to():
    """A row's compared update and the plan's caps are two facts in two files: a capped run that stops short
    leaves its row undecided for good, and one capped past the capped rows' update trains for nothing."""
    study = study_script()
    caps = {name: cap for cap, names in study.CONVERGED_PLAN for name in names}
    for template, _ in sc.CHECKS:
        for compared in (sc.EQUAL_UPDATES, sc.CAPPED_UPDATES):
            if f"update {compared}" not in template.rule:
                continue
            capped = {name: caps[name] for name in template.experiments if caps[name] is not None}
            assert all(cap >= compared for cap in capped.values()), (template.number, capped)
            if compared == sc.CAPPED_UPDATES:
                assert compared in capped.values(), (template.number, capped)  # its capped run stops there


def test_no_two_runs_of_the_plan_train_the_same_flags():
    """Under the one schedule a config keeps only its architecture and --node-* flags: two configs that differ
    in nothing else (the demo and node_separated_aug1) would train the same run twice."""
    from node_experiments.runner import CAP_FLAG, Experiment, Schedule

    study = study_script()
    schedule = Schedule(study.SCHEDULE)
    planned = [name for _, names in study.CONVERGED_PLAN for name in names]
    trained_as = {}  # {the flags a run trains with, in any order and without its cap: [experiments]}
    for name in planned + ["demo"]:
        groups = schedule.flag_groups(Experiment.from_config(name))
        flags = frozenset((flag, tuple(values)) for flag, values in groups.items() if flag != CAP_FLAG)
        trained_as.setdefault(flags, []).append(name)
    assert [names for names in trained_as.values() if len(names) > 1] == [[sc.DEMO_RUN, "demo"]]


def test_the_clip_row_asks_whether_clipping_lets_the_stalled_full_node_learn(records):
    stalled = {200: 9.7, 400: 8.6, 600: 8.0, 800: 8.8, 1000: 8.25, 1200: 8.27, 1400: 10.0, 1600: 8.05}
    full = ["--node-encoder", "--node-decoder"]
    records["node_full_tol1e-2"] = record("node_full_tol1e-2", stalled, 4.0, status="plateau", flags=full, nfe={
        "nfe_enc_fwd": rising(20, 20, 1600), "nfe_dec_fwd": rising(14, 32, 1600), "gnorm": {50: 1.5, 650: 362.2, 1050: 759.4, 1600: 2.0}})
    records[sc.CLIPPED_EXPERIMENT] = record(sc.CLIPPED_EXPERIMENT, curve(6.5, 3000), 4.0, status="update cap",
                                            flags=full + ["--clip-norm", "1.0"], nfe={
                                                "nfe_dec_fwd": rising(14, 20, 3000), "gnorm": {50: 1.5, 650: 3.1}})
    clip = by_number(sc.check(records))["clip"]
    assert clip.verdict == sc.REPRODUCED  # 5.0 at update 3000 against the stalled run's best, 8.0
    assert clip.evidence == ("valid loss at update 3000: node_full_tol1e-2_clip 5.000, node_full_tol1e-2 8.000 (its "
                             "best: on its plateau since update 600, stopped at 1600); largest gradient norm of "
                             "node_full_tol1e-2_clip 3.1; largest gradient norm of node_full_tol1e-2 759.4")
    assert [c.number for c in sc.in_section(sc.check(records), "stability")] == ["clip"]
    records[sc.CLIPPED_EXPERIMENT] = record(sc.CLIPPED_EXPERIMENT, curve(9.47, 3000), 4.0, status="update cap",
                                            flags=full, nfe={"nfe_dec_fwd": rising(14, 20, 3000)})
    clip = by_number(sc.check(records))["clip"]
    assert clip.verdict == sc.REFUTED and "largest gradient norm of node_full_tol1e-2_clip" not in clip.evidence
    # better than the base's best, but stopped on its own plateau before update 3000: clipping only delayed it
    delayed = {200: 9.6, 400: 8.5, 600: 7.8, 800: 6.8, 1000: 7.0, 1200: 9.5, 1400: 9.4, 1600: 9.3, 1800: 9.2}
    records[sc.CLIPPED_EXPERIMENT] = record(sc.CLIPPED_EXPERIMENT, delayed, 4.0, status="plateau", flags=full,
                                            nfe={"nfe_dec_fwd": rising(14, 50, 1800)})
    clip = by_number(sc.check(records))["clip"]
    assert clip.verdict == sc.REFUTED
    assert clip.evidence.startswith("valid loss at update 3000: node_full_tol1e-2_clip 6.800 (its best: on its "
                                    "plateau since update 800, stopped at 1800), node_full_tol1e-2 8.000")
    assert clip.evidence.endswith("; node_full_tol1e-2_clip stopped on its plateau at update 1800 as well")


def test_a_config_keeps_the_schedule_flag_that_is_its_question_and_no_other():
    from node_experiments.runner import QUESTION_FLAGS, Experiment, Schedule

    study = study_script()
    schedule = Schedule(study.SCHEDULE)
    clipped = schedule.flag_groups(Experiment.from_config("node_full_tol1e-2_clip"))
    base = schedule.flag_groups(Experiment.from_config("node_full_tol1e-2"))
    assert QUESTION_FLAGS == ("--clip-norm", "--node-gradient")
    assert clipped["--clip-norm"] == ["1.0"] and base["--clip-norm"] == ["0.0"]
    assert {flag: words for flag, words in clipped.items() if flag != "--clip-norm"} == \
        {flag: words for flag, words in base.items() if flag != "--clip-norm"}
    # any other flag the config sets is the schedule's: the 10-minute study's lr 0.001 becomes 0.005
    assert Experiment.from_config("node_full_tol1e-2").flag_groups["--lr"] == ["0.001"] and base["--lr"] == ["0.005"]
    # the gradient: the schedule's backprop unless the config chooses, and then nothing else differs
    adjoint = schedule.flag_groups(Experiment.from_config(sc.FULL_NODE))
    assert base["--node-gradient"] == ["backprop"] and adjoint["--node-gradient"] == ["adjoint"]
    assert {flag: words for flag, words in adjoint.items() if flag != "--node-gradient"} == \
        {flag: words for flag, words in base.items() if flag != "--node-gradient"}


def test_the_layer_row_compares_with_the_classic_1_layer(records):
    records[sc.LAYER_EXPERIMENT] = record(sc.LAYER_EXPERIMENT, curve(4.95), 0.6, bleu=38.5,
                                          nfe={"nfe_dec_fwd": rising(2, 2)}, flags=["--node-decoder"])
    records["transformer_tiny"] = record("transformer_tiny", curve(4.2), 1.5, bleu=40.6)
    row = by_number(sc.check(records))["layer"]
    # best losses at update 4000: layer 2.95, 1-layer 3.0, tiny 2.2
    assert row.verdict == sc.REPRODUCED and "transformer_1layer 3.000 (-0.050)" in row.evidence
    assert "transformer_tiny 2.200 (+0.750)" in row.evidence
    records[sc.LAYER_EXPERIMENT].best_valid_loss = 3.01
    assert by_number(sc.check(records))["layer"].verdict == sc.REFUTED


def test_the_readme_block_is_replaced_and_a_readme_without_one_is_named(records):
    checked = sc.check(records)
    readme = f"# title\n\nbefore\n{sc.README_BEGIN}\nold table\n{sc.README_END}\nafter\n"
    updated = sc.in_readme(readme, checked, "benchmarks/results/converged/figures")
    assert updated.startswith(f"# title\n\nbefore\n{sc.README_BEGIN}\n| # |")
    assert updated.endswith(f"|\n{sc.README_END}\nafter\n") and "old table" not in updated
    assert "decided by" not in updated and "decided by" in sc.markdown(checked)
    assert sc.in_readme(updated, checked, "benchmarks/results/converged/figures") == updated
    with pytest.raises(ValueError, match="the README has no block"):
        sc.in_readme("# title\n", checked, "figures")


def test_the_readmes_conclusions_are_those_of_the_committed_records():
    from helpers import REPO
    from node_experiments.study_record import read_all

    study = study_script()
    records = read_all(study.CONVERGED_OUT / study.RECORDS)
    assert records, "no committed record"
    assert study.readme_with_conclusions(sc.check(records)) == (REPO / "README.md").read_text(), \
        "README.md's conclusions are stale: run scripts/study.sh --report"


def test_costs_compare_across_machines_by_their_yardsticks(records):
    """node_decoder_aug1 trained again on a machine twice as slow as the others': 6 s per update there, its
    yardstick 1.2 s: 5 transformer_1layer updates, as on the others' machine (3.0 s against 0.6). The
    separated decoder's advantage (row 7) reads the same."""
    from node_experiments.study_record import Session

    moved = records["node_decoder_aug1"]
    moved.seconds_per_update, moved.sessions = 6.0, [Session(last_update=3000, seconds_per_update=6.0, yardstick=1.2)]
    assert sc.cost(records, "node_decoder_aug1") == pytest.approx(5.0)
    assert sc.cost(records, "transformer_1layer") == 1.0  # made before the yardstick: its own speed is its unit
    assert sc.cost(records, "node_separated_aug1") == pytest.approx(2.0 / 0.6)
    checked = by_number(sc.check(records))
    assert checked["7"].verdict == sc.REPRODUCED and "0.67x the cost per update" in checked["7"].evidence

    moved.sessions.append(Session(last_update=3200, seconds_per_update=3.0, yardstick=None))  # not measured
    assert sc.cost(records, "node_decoder_aug1") is None
    checked = by_number(sc.check(records))
    assert checked["7"].verdict == sc.NOT_TESTABLE
    assert "the cost per update of node_decoder_aug1 is not known on a common scale" in checked["7"].evidence
