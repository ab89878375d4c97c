"""scripts/study.sh --progress: where each converged run stands, read from run directories written here as
the runner writes them (a log, the fingerprint it started with, its kept result)."""
import fcntl

import pytest

from helpers import study_script
from multi30k_subset import script
from node_experiments import study_progress
from node_experiments.run_dir import SUBSETS
from node_experiments.runner import LOCK_FILE, RESULT_FILE, STARTED_FILE, Experiment, RunResult, Runner, Schedule
from node_experiments.study_record import read_all

SCHEDULE = study_script().SCHEDULE  # the converged schedule: patience 5, validating every 200 updates


def study_runner(work):
    """A runner as scripts/study.sh --converged makes it: the fingerprint covers the test sets too."""
    return Runner(Schedule(SCHEDULE), work, data=work / "no-data", subsets=list(SUBSETS))


def log(valid_losses, updates, *, seconds_per_update=2.0, plateau=False, pace=None):
    """A fairseq training log: a validation every 200 updates with these losses, train_inner lines every 50
    updates up to UPDATES, each interval at SECONDS_PER_UPDATE or PACE(its last update)."""
    lines = ["2026-12-01 10:00:00 | INFO | fairseq_cli.train | training on 1 devices (GPUs/TPUs)",
             "2026-12-01 10:00:01 | INFO | fairseq_cli.train | Start iterating over samples"]
    for update in range(50, updates + 1, 50):
        seconds = pace(update) if pace else seconds_per_update
        lines.append(f"2026-12-01 10:00:02 | INFO | train_inner | epoch 001: loss=5.0, ups={1 / seconds}, "
                     f"num_updates={update}, wall=0")
        if update % 200 == 0 and update // 200 <= len(valid_losses):
            loss = valid_losses[update // 200 - 1]
            lines.append(f"2026-12-01 10:00:03 | INFO | valid | epoch 001 | valid on 'valid' subset | loss {loss} | "
                         f"num_updates {update} | best_loss {loss}")
    if plateau:
        lines += ["2026-12-01 10:00:04 | INFO | fairseq_cli.train | early stop since valid performance hasn't "
                  "improved for last 5 runs",
                  "2026-12-01 10:00:05 | INFO | fairseq_cli.train | done training in 100.0 seconds"]
    return "\n".join(lines) + "\n"


def lay_out(runner, experiment, log_text, *, started_as=None, result=False, stopped=None):
    run = runner.run_dir(experiment)
    run.path.mkdir(parents=True)
    run.train_log.write_text(log_text)
    key = runner.fingerprint(runner.flags(experiment))
    (run.path / STARTED_FILE).write_text(started_as or key)
    if result:
        done = RunResult(experiment.name, updates=1400, train_seconds=100.0, seconds_per_update=2.0,
                         best_valid_loss=4.0, best_at_update=400, best_at_minutes=1.0, curve=[], nfe={},
                         budget_skips=0, fingerprint=key, max_update=8000, stopped=stopped)
        (run.path / RESULT_FILE).write_text(done.to_json())


def test_progress_of_each_kind_of_run(tmp_path):
    runner = study_runner(tmp_path)
    plan = {name: Experiment.from_config(name, cap) for name, cap in (
        ("transformer_1layer", None), ("node_layer_euler_t2", None), ("node_separated_aug1", None),
        ("demo_kinetic", 3000), ("node_decoder_aug1", 3000), ("transformer_tiny", None),
        ("transformer_1layer_prenorm_dec", None), ("node_full_aug1", 2000), ("node_full_tol1e-3", 2000),
        ("node_full_tol1e-2", None))}
    lay_out(runner, plan["transformer_1layer"], log([5.0, 4.0, 4.5, 4.5, 4.5, 4.5, 4.5], 1400, plateau=True),
            result=True)
    # Best at update 400, two validations without improvement since, 50 updates past the last one.
    lay_out(runner, plan["node_layer_euler_t2"], log([5.0, 4.0, 4.2, 4.1], 850, seconds_per_update=1.5))
    lay_out(runner, plan["node_separated_aug1"], log([5.0], 200), started_as="another fingerprint")
    # Improving at every validation, 150 updates before its cap: the cap comes before patience could run out.
    lay_out(runner, plan["demo_kinetic"], log([5.0 - 0.1 * v for v in range(14)], 2850, seconds_per_update=3.0))
    lay_out(runner, plan["node_decoder_aug1"], log([], 0))  # started by the runner, no update logged yet
    lay_out(runner, plan["transformer_1layer_prenorm_dec"], log([5.0, 4.5], 450, plateau=True))  # translating
    lay_out(runner, plan["node_full_aug1"], log([5.0] * 12, 2400))  # trained under a higher cap than now
    lay_out(runner, plan["node_full_tol1e-2"], log([5.0, 4.8], 450), result=True,
            stopped="NODETrainingStopped: 10 consecutive batches exceeded the solver budget, last at update 457")
    by_name = {name: study_progress.progress(runner, experiment) for name, experiment in plan.items()}

    def left(name):
        return by_name[name].least_updates_left, by_name[name].most_updates_left

    finished = by_name["transformer_1layer"]
    assert (finished.state, finished.how, left("transformer_1layer")) == ("finished", "plateau", (0, 0))
    going = by_name["node_layer_euler_t2"]
    assert going.state == "unfinished" and going.updates == 850 and going.cap == 8000
    assert (going.best_valid_loss, going.best_at_update, going.validations_since_best) == (4.0, 400, 2)
    assert going.seconds_per_update == 1.5
    assert left("node_layer_euler_t2") == (3 * 200 - 50, 8000 - 850)  # patience 5: three more validations
    assert going.most_hours_left == (8000 - 850) * 1.5 / 3600
    assert (by_name["node_separated_aug1"].state, by_name["node_separated_aug1"].how) == ("starts again", "other flags")
    assert by_name["node_separated_aug1"].updates == 0
    assert by_name["demo_kinetic"].validations_since_best == 0 and left("demo_kinetic") == (150, 150)
    starting = by_name["node_decoder_aug1"]  # a first validation that is the best, then five without: 6 x 200
    assert (starting.state, starting.updates, left("node_decoder_aug1")) == ("unfinished", 0, (1200, 3000))
    assert by_name["transformer_tiny"].state == "not started" and left("transformer_tiny") == (1200, 8000)
    assert by_name["transformer_tiny"].seconds_per_update is None
    translating = by_name["transformer_1layer_prenorm_dec"]
    assert (translating.state, left("transformer_1layer_prenorm_dec")) == ("translating", (0, 0))
    lowered = by_name["node_full_aug1"]
    assert (lowered.state, lowered.how, lowered.updates, left("node_full_aug1")) == \
        ("starts again", "past a lowered cap", 0, (1200, 2000))
    assert by_name["node_full_tol1e-3"].state == "not started"

    table = study_progress.markdown(list(by_name.values()), tmp_path, active=False)
    assert "| node_layer_euler_t2 | unfinished | 850 / 8000 | 4.000 (400) | 2 | 1.50 (1.50) | 550 - 7150 | 3.0 |" in table
    assert "| transformer_1layer | finished: plateau | 1400 / 8000 |" in table
    assert "| node_full_tol1e-2 | finished: stopped | 450 / 8000 |" in table  # why: in its record and study.md
    assert "| node_full_aug1 | starts again: past a lowered cap | 0 / 2000 |" in table
    assert f"No runner is using {tmp_path}. At most {(7150 * 1.5 + 150 * 3.0) / 3600:.1f} h left" in table
    assert table.endswith("not yet measured: node_separated_aug1, node_decoder_aug1, transformer_tiny, "
                          "node_full_aug1, node_full_tol1e-3.\n")
    assert f"A runner is using {tmp_path}" in study_progress.markdown([], tmp_path, active=True)


def test_a_runner_is_seen_by_its_lock_without_taking_it(tmp_path):
    assert not study_progress.runner_active(tmp_path)  # no lock file
    (tmp_path / LOCK_FILE).write_text("")
    assert not study_progress.runner_active(tmp_path)  # left by a runner that has exited
    with open(tmp_path / LOCK_FILE, "w") as lock:  # as the runner holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert study_progress.runner_active(tmp_path)
        assert not study_progress.runner_active(tmp_path / "elsewhere")
    assert not study_progress.runner_active(tmp_path)


def test_progress_on_the_command_line(tmp_path):
    runner = study_runner(tmp_path)
    lay_out(runner, Experiment.from_config("transformer_1layer"), log([5.0, 4.0], 450))
    shown = script("study.sh", "--converged", "--progress", "--work", tmp_path, "transformer_1layer").stdout
    assert "| transformer_1layer | unfinished | 450 / 8000 | 4.000 (400) | 0 |" in shown
    empty = tmp_path / "no-records"  # as --out: no committed record finishes a run
    named = script("study.sh", "--progress", "--work", tmp_path, "--out", empty, "demo_kinetic").stdout
    assert "| demo_kinetic | not started | 0 / 3000 | - | 0 | - | 1200 - 3000 | - |" in named  # its planned cap
    plan = script("study.sh", "--progress", "--work", tmp_path, "--out", empty).stdout  # nothing else started
    assert plan.count("| not started |") == plan.count("\n| ") - 1 and "node_full_aug1_adjoint | not started" in plan
    # A new machine: the runs the repository's records finished are finished with today's flags.
    fresh = script("study.sh", "--progress", "--work", tmp_path / "new-machine").stdout
    records = read_all(study_script().CONVERGED_OUT / "records")
    assert records and all(f"| {name} | finished: {r.short_status} (recorded) | {r.updates} / " in fresh
                           for name, r in records.items())
    refused = script("study.sh", "--minutes", "1", "--progress", "--work", tmp_path, check=False)
    assert refused.returncode == 2 and "--progress" in refused.stderr


def test_hours_left_at_the_recent_pace(tmp_path):
    """A run whose cost per update rose (an adaptive NODE whose NFE rises): the hours left are counted at the
    pace of its last intervals, not at the median of its whole run, which its cheap early updates hold down."""
    runner = study_runner(tmp_path)
    experiment = Experiment.from_config("node_full_tol1e-2_adjoint", 3000)
    lay_out(runner, experiment, log([9.0, 8.0, 7.0, 6.9], 900, pace=lambda update: 4.0 if update <= 650 else 20.0))
    shown = study_progress.progress(runner, experiment)
    assert (shown.seconds_per_update, shown.recent_seconds_per_update) == pytest.approx((4.0, 20.0))
    assert shown.most_hours_left == pytest.approx((3000 - 900) * 20.0 / 3600)
    assert "| 4.00 (20.00) | 900 - 2100 | 11.7 |" in study_progress.markdown([shown], tmp_path, active=True)
