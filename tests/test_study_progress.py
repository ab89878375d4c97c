"""scripts/study.sh --progress: where each converged run stands, read from run directories written here as
the runner writes them (a log, the fingerprint it started with, its kept result)."""
import fcntl

from helpers import REPO
from multi30k_subset import script
from node_experiments import study_progress
from node_experiments.run_dir import SUBSETS
from node_experiments.runner import LOCK_FILE, RESULT_FILE, STARTED_FILE, Experiment, RunResult, Runner, Schedule

SCHEDULE = REPO / "configs" / "base" / "converged_schedule.args"  # patience 5, validating every 200 updates


def study_runner(work):
    """A runner as scripts/study.sh --converged makes it: the fingerprint covers the test sets too."""
    return Runner(Schedule(SCHEDULE), work, data=work / "no-data", subsets=list(SUBSETS))


def log(valid_losses, updates, *, seconds_per_update=2.0, plateau=False):
    """A fairseq training log: a validation every 200 updates with these losses, train_inner lines every 50
    updates up to UPDATES."""
    lines = ["2026-12-01 10:00:00 | INFO | fairseq_cli.train | training on 1 devices (GPUs/TPUs)",
             "2026-12-01 10:00:01 | INFO | fairseq_cli.train | Start iterating over samples"]
    for update in range(50, updates + 1, 50):
        lines.append(f"2026-12-01 10:00:02 | INFO | train_inner | epoch 001: loss=5.0, ups={1 / seconds_per_update}, "
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


def lay_out(runner, experiment, log_text, *, started_as=None, result=False):
    run = runner.run_dir(experiment)
    run.path.mkdir(parents=True)
    run.train_log.write_text(log_text)
    key = runner.fingerprint(runner.flags(experiment))
    (run.path / STARTED_FILE).write_text(started_as or key)
    if result:
        done = RunResult(experiment.name, updates=1400, train_seconds=100.0, seconds_per_update=2.0,
                         best_valid_loss=4.0, best_at_update=400, best_at_minutes=1.0, curve=[], nfe={},
                         budget_skips=0, fingerprint=key, max_update=8000)
        (run.path / RESULT_FILE).write_text(done.to_json())


def test_progress_of_each_kind_of_run(tmp_path):
    runner = study_runner(tmp_path)
    finished, unfinished, other, capped, absent = (
        Experiment.from_config("transformer_1layer"), Experiment.from_config("node_layer_euler_t2"),
        Experiment.from_config("node_separated_aug1"), Experiment.from_config("demo", update_cap=3000),
        Experiment.from_config("transformer_tiny"))
    lay_out(runner, finished, log([5.0, 4.0, 4.5, 4.5, 4.5, 4.5, 4.5], 1400, plateau=True), result=True)
    # Best at update 400, two validations without improvement since, 50 updates past the last one.
    lay_out(runner, unfinished, log([5.0, 4.0, 4.2, 4.1], 850, seconds_per_update=1.5))
    lay_out(runner, other, log([5.0], 200), started_as="another fingerprint")
    lay_out(runner, capped, log([5.0, 4.8, 4.6], 650, seconds_per_update=3.0))
    starting = Experiment.from_config("node_decoder_aug1")
    lay_out(runner, starting, log([], 0))  # started by the runner, its first update not logged yet
    by_name = {p.experiment: p for p in (study_progress.progress(runner, e)
                                         for e in (finished, unfinished, other, capped, absent, starting))}

    assert by_name["transformer_1layer"].state == "finished: plateau"
    assert by_name["transformer_1layer"].least_updates_left == by_name["transformer_1layer"].most_updates_left == 0
    going = by_name["node_layer_euler_t2"]
    assert going.state == "unfinished" and going.updates == 850 and going.cap == 8000
    assert (going.best_valid_loss, going.best_at_update, going.validations_since_best) == (4.0, 400, 2)
    assert going.seconds_per_update == 1.5
    assert (going.least_updates_left, going.most_updates_left) == (3 * 200 - 50, 8000 - 850)
    assert going.most_hours_left == (8000 - 850) * 1.5 / 3600
    assert by_name["node_separated_aug1"].state == "starts again (other flags)"
    assert by_name["node_separated_aug1"].updates == 0
    near_cap = by_name["demo"]  # improving at every validation: the cap comes before patience could run out
    assert (near_cap.cap, near_cap.validations_since_best) == (3000, 0)
    assert (near_cap.least_updates_left, near_cap.most_updates_left) == (5 * 200 - 50, 3000 - 650)
    assert by_name["transformer_tiny"].state == "not started" and by_name["transformer_tiny"].seconds_per_update is None
    assert by_name["node_decoder_aug1"].state == "unfinished" and by_name["node_decoder_aug1"].updates == 0

    table = study_progress.markdown(list(by_name.values()), tmp_path)
    assert "| node_layer_euler_t2 | unfinished | 850 / 8000 | 4.000 (400) | 2 | 1.50 | 550 - 7150 | 3.0 |" in table
    assert f"No runner is using {tmp_path}. At most {(7150 * 1.5 + 2350 * 3.0) / 3600:.1f} h left" in table
    assert "not yet measured: node_separated_aug1, transformer_tiny, node_decoder_aug1." in table
    with open(tmp_path / LOCK_FILE, "w") as lock:  # as the runner holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert f"A runner is using {tmp_path}" in study_progress.markdown([], tmp_path)


def test_progress_on_the_command_line(tmp_path):
    runner = study_runner(tmp_path)
    lay_out(runner, Experiment.from_config("transformer_1layer"), log([5.0, 4.0], 450))
    shown = script("study.sh", "--converged", "--progress", "--work", tmp_path, "transformer_1layer").stdout
    assert "| transformer_1layer | unfinished | 450 / 8000 | 4.000 (400) | 0 |" in shown
    plan = script("study.sh", "--progress", "--work", tmp_path).stdout  # the whole plan, nothing else started
    assert plan.count("| not started |") == plan.count("\n| ") - 1 and "node_full_aug1 | not started" in plan
    refused = script("study.sh", "--minutes", "1", "--progress", "--work", tmp_path, check=False)
    assert refused.returncode == 2 and "--progress" in refused.stderr
