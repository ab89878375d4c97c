"""The study runner on the Multi30k subset: --minutes (kept, resumed, a stopped run) and --converged (resumed
from checkpoint_last.pt, averaged, recorded, its cap raised and lowered)."""
import json
import re
import shutil
import subprocess
import time

import pytest
import torch

from helpers import REPO
from multi30k_subset import ENV, prepared, script  # noqa: F401  (prepared: a fixture)
from node_transformer import checkpoint_safety  # noqa: F401  (torch.load of fairseq checkpoints)
from node_experiments.averaging import interval_checkpoints
from node_experiments.experiment_config import read_flags

pytestmark = pytest.mark.slow  # fairseq subprocesses (the 'slow' marker: tests/conftest.py)


def study(prepared, work, *args, check=True):
    return script("study.sh", "--data", prepared / "bin", "--work", work, "--out", work / "results", *args,
                  check=check)


def test_study_runs_keeps_resumes_and_records_a_stopped_run(prepared, tmp_path):
    """Two experiments and one whose solver keeps exceeding its budget, under a few seconds each: one table;
    a second call keeps every finished experiment; an experiment interrupted while translating is translated,
    one interrupted while training retrains alone."""
    stalling = tmp_path / "stalling.args"
    stalling.write_text(" ".join(read_flags(REPO / "configs" / "demo.args"))
                        + " --node-max-num-steps 1 --node-max-consecutive-skips 2\n")
    work = tmp_path / "study"
    experiments = ["transformer_1layer", "node_fast_separated_euler", stalling]
    proc = study(prepared, work, "--minutes", "0.1", "--validate-every", "2", *experiments)
    table = (work / "results" / "study.md").read_text()
    written = json.loads((work / "results" / "study.json").read_text())
    results = {r["experiment"]: r for r in written["results"]}
    assert list(results) == ["transformer_1layer", "node_fast_separated_euler", "stalling"]
    equal = written["equal_updates"]  # the last validation both trained runs reached
    assert equal % 2 == 0 and f"valid loss at update {equal} |" in table
    assert equal == min(max(u for _, u, _ in results[name]["curve"] if u % 2 == 0)
                        for name in ("transformer_1layer", "node_fast_separated_euler"))
    for name in ("transformer_1layer", "node_fast_separated_euler"):
        result = results[name]
        assert result["stopped"] is None and result["updates"] > 0 and result["best_valid_loss"] > 0
        assert 0 <= result["translation"]["test2016_flickr"]["tokenized_bleu"] <= 100
        loss_there = next(loss for _, u, loss in result["curve"] if u == equal)
        assert f"| {name} | {result['updates']} | {result['seconds_per_update']:.2f} | " in table
        assert f"min) | {loss_there:.2f} | " in table.split(f"| {name} |")[1].split("\n")[0]
    stalled = results["stalling"]
    assert stalled["stopped"] and "consecutive batches exceeded the solver budget" in stalled["stopped"]
    assert stalled["budget_skips"] == 1  # the first batch skipped, the second stopped training
    assert "| stalling (stopped) |" in table and "early training, not convergence" in table
    assert (work / "results" / "study" / "best_valid_loss_vs_hours.png").is_file()
    longest_source = max(len(line.split()) for line in (prepared / "bpe" / "test.en").read_text().splitlines()) + 1
    for name in ("transformer_1layer", "node_fast_separated_euler"):  # at most 1.2 x source + 10 (+ EOS)
        scored = [line for line in (work / name / "gen" / "test.txt").read_text().splitlines() if line.startswith("P-")]
        assert scored and max(len(line.split("\t")[1].split()) for line in scored) <= int(1.2 * longest_source + 10) + 1
        assert "'max_len_a': 1.2" in (work / name / "gen" / "generate.log").read_text()

    logs = {name: (work / name / "train.log").stat().st_mtime for name in results}
    again = study(prepared, work, "--minutes", "0.1", "--validate-every", "2", *experiments)
    assert again.stdout.count("kept (finished earlier)") == 3
    assert logs == {name: (work / name / "train.log").stat().st_mtime for name in results}

    def translated_before_the_bound(result_file):
        result = {key: value for key, value in json.loads(result_file.read_text()).items()
                  if key != "translation_flags"}
        result_file.write_text(json.dumps(result))
        return result

    euler = work / "node_fast_separated_euler" / "study_result.json"
    before_bound = translated_before_the_bound(euler)
    assert not (work / "stalling" / "checkpoints" / "checkpoint_best.pt").exists()  # nothing to translate again
    translated_before_the_bound(work / "stalling" / "study_result.json")
    bounded = study(prepared, work, "--minutes", "0.1", "--validate-every", "2", *experiments)
    assert "node_fast_separated_euler: kept the training (finished earlier), translating again" in bounded.stdout
    assert bounded.stdout.count("kept (finished earlier)") == 2
    assert logs == {name: (work / name / "train.log").stat().st_mtime for name in results}
    retranslated = json.loads(euler.read_text())
    assert retranslated["translation_flags"] and retranslated["updates"] == before_bound["updates"]
    assert retranslated["translation"]["test2016_flickr"]["tokenized_bleu"] >= 0

    (work / "transformer_1layer" / "study_result.json").unlink()  # as if interrupted while translating
    translated = study(prepared, work, "--minutes", "0.1", "--validate-every", "2", *experiments)
    assert "transformer_1layer: trained earlier, translating" in translated.stdout
    assert logs == {name: (work / name / "train.log").stat().st_mtime for name in results}

    log = work / "transformer_1layer" / "train.log"
    log.write_text(log.read_text().split("fairseq_cli.train | done training")[0])  # ... and while training
    (work / "transformer_1layer" / "study_result.json").unlink()
    resumed = study(prepared, work, "--minutes", "0.1", "--validate-every", "2", *experiments)
    assert resumed.stdout.count("kept (finished earlier)") == 2 and "transformer_1layer: training" in resumed.stdout
    assert (work / "transformer_1layer" / "train.log").read_text().count("| training on ") == 1  # from scratch


def shrunken_schedule(path, **values):
    """The converged schedule with some flags' values replaced ({"max_update": 8} for --max-update 8)."""
    lines = (REPO / "configs" / "base" / "converged_schedule.args").read_text().splitlines()
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        assert any(line.startswith(flag + " ") for line in lines), flag
        lines = [f"{flag} {value}" if line.startswith(flag + " ") else line for line in lines]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_converged_study_resumes_averages_and_records(prepared, tmp_path):
    """The converged schedule shrunk to 8 updates of 512 tokens (validating and saving every 2, all within the
    first epoch: fairseq writes no interval checkpoint at an epoch's end): trained, averaged, all three test
    sets translated, a record and a table from it; cut while training, the run resumes from its
    checkpoint_last.pt instead of starting again; a raised cap extends it, a lowered one starts it again."""
    shrunk = dict(max_update=8, max_tokens=512, warmup_updates=4, validate_interval_updates=2,
                  save_interval_updates=2, log_interval=2)
    schedule = shrunken_schedule(tmp_path / "schedule.args", **shrunk)
    work, out = tmp_path / "runs", tmp_path / "out"
    command = ["--converged", "--schedule", schedule, "--average-last", "3", "--out", out, "transformer_1layer"]
    study(prepared, work, *command)
    run = work / "transformer_1layer"
    checkpoints = interval_checkpoints(run / "checkpoints")
    assert [int(path.stem.split("_")[-1]) for path in checkpoints] == [2, 4, 6, 8]
    averaged = torch.load(run / "checkpoints" / "checkpoint_averaged.pt")  # safe loading, as fairseq-generate's
    assert averaged["averaged_checkpoints"] == [path.name for path in checkpoints[-3:]]
    assert "last_optimizer_state" not in averaged
    record = json.loads((out / "records" / "transformer_1layer.json").read_text())
    assert record["status"] == "update cap" and record["updates"] == 8
    assert record["valid"]["updates"] == [2, 4, 6, 8] and record["final_model"] == "checkpoint_averaged.pt"
    [session] = record["sessions"]  # measured before it trained: this machine's transformer_1layer speed
    assert session["last_update"] == 8 and session["yardstick"] > 0 and session["seconds_per_update"] > 0
    assert not (work / ".yardstick").exists()
    assert set(record["translation"]) == {"test2016_flickr", "test2017_flickr", "test2017_mscoco"}
    assert "--max-update 8" in " ".join(record["flags"]) and "--dropout 0.3" in " ".join(record["flags"])
    assert "| transformer_1layer | - | update cap | 8 |" in (out / "study.md").read_text()
    assert (out / "figures" / "best_valid_loss_vs_updates.png").is_file()

    # As if cut while training after update 4's checkpoint: its log without the end, its later checkpoints gone.
    log = run / "train.log"
    log.write_text(log.read_text().split("fairseq_cli.train | done training")[0])
    shutil.copy(checkpoints[1], run / "checkpoints" / "checkpoint_last.pt")
    for path in (*checkpoints[2:], run / "study_result.json", run / "checkpoints" / "checkpoint_averaged.pt",
                 out / "records" / "transformer_1layer.json"):  # a cut run has no record yet
        path.unlink()
    # Carried through the repository (OUT/carry) to a new machine, which has no run directory.
    assert "transformer_1layer: carried at update 4" in study(prepared, work, "--carry", *command).stdout
    shutil.rmtree(work)
    resumed = study(prepared, work, *command)
    assert "transformer_1layer: training (converged schedule)" in resumed.stdout
    assert f"transformer_1layer: resuming at update 4 from {out / 'carry' / 'transformer_1layer'}" in resumed.stdout
    text = log.read_text()
    assert text.count("| training on ") == 2 and "Loaded checkpoint" in text.split("| training on ")[2]
    assert re.search(r"Loaded checkpoint \S+checkpoint_last.pt \(epoch \d+ @ 4 updates\)", text)  # not from scratch
    record = json.loads((out / "records" / "transformer_1layer.json").read_text())
    # the first session's updates 5 to 8 were lost with it (trained again): the record has them from the second
    assert record["updates"] == 8 and [session["last_update"] for session in record["sessions"]] == [4, 8]
    assert text.count("node_experiments.yardstick") == 2 and all(session["yardstick"] for session in record["sessions"])
    averaged = torch.load(run / "checkpoints" / "checkpoint_averaged.pt")  # the interval checkpoints stayed behind
    assert averaged["averaged_checkpoints"] == ["checkpoint_1_6.pt", "checkpoint_1_8.pt"]

    kept = study(prepared, work, *command)
    assert "transformer_1layer: kept (finished earlier)" in kept.stdout
    new_machine = study(prepared, tmp_path / "new-machine", *command)  # the record keeps it: nothing trains
    assert "transformer_1layer: kept (recorded: update cap, 8 updates)" in new_machine.stdout
    assert not (tmp_path / "new-machine" / "transformer_1layer").exists()
    assert "finished: its carried copy removed" in study(prepared, work, "--carry", *command).stdout
    assert not list((out / "carry").glob("*/*"))
    raised = study(prepared, work, *command, "--max-update", "10")  # goes on from update 8
    assert "transformer_1layer: training (converged schedule)" in raised.stdout
    text = log.read_text()
    assert text.count("| training on ") == 3 and re.search(r"checkpoint_last.pt \(epoch \d+ @ 8 updates\)", text)
    record = json.loads((out / "records" / "transformer_1layer.json").read_text())
    assert record["updates"] == 10 and record["valid"]["updates"] == [2, 4, 6, 8, 10]
    assert record["status"] == "update cap" and "--max-update 10" in " ".join(record["flags"])
    lowered = study(prepared, work, *command, "--max-update", "4")  # past that cap already: starts again
    assert "transformer_1layer: training" in lowered.stdout and log.read_text().count("| training on ") == 1
    assert json.loads((out / "records" / "transformer_1layer.json").read_text())["updates"] == 4


def test_carry_stops_the_runner_after_its_update_and_the_copy_resumes_there(prepared, tmp_path):
    """--carry while the runner trains, between two of its 50-update intervals: the runner's fairseq-train saves
    checkpoint_last.pt after its current update, validating nothing, and the runner exits without translating
    or recording; on a machine without the run directory, the copy resumes at that update and finishes with
    the validations and intervals of a run never stopped."""
    schedule = shrunken_schedule(tmp_path / "schedule.args", max_update=100, max_tokens=512, warmup_updates=4,
                                 validate_interval_updates=50, save_interval_updates=50, log_interval=1)
    work, out = tmp_path / "runs", tmp_path / "out"
    command = ["--converged", "--schedule", schedule, "--average-last", "2", "--out", out, "transformer_1layer"]
    log = work / "transformer_1layer" / "train.log"
    with subprocess.Popen(["bash", str(REPO / "scripts" / "study.sh"), "--data", str(prepared / "bin"),
                           "--work", str(work), *map(str, command)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO) as runner:
        deadline = time.monotonic() + 300
        while not (log.is_file() and "| train_inner |" in log.read_text().split("node_experiments.yardstick")[-1]):
            assert runner.poll() is None and time.monotonic() < deadline, "the runner did not start training"
            time.sleep(0.2)
        carried = study(prepared, work, "--carry", *command).stdout
        stdout, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 0, stderr[-3000:]
    assert "asked the runner (process " in carried
    stopped_at = int(re.search(r"transformer_1layer: carried at update (\d+)", carried)[1])
    assert 0 < stopped_at < 100
    assert f"study: stopped as asked: transformer_1layer at update {stopped_at}, in its checkpoint_last.pt" in stdout
    assert f"SIGUSR1: saved checkpoint_last.pt at update {stopped_at}; stopping (exit 75)" in log.read_text()
    assert not (work / "transformer_1layer" / "study_result.json").exists() and not (out / "records").exists()

    shutil.rmtree(work)  # a new machine
    resumed = study(prepared, work, *command)
    assert f"transformer_1layer: resuming at update {stopped_at} from {out / 'carry' / 'transformer_1layer'}" in resumed.stdout
    record = json.loads((out / "records" / "transformer_1layer.json").read_text())
    assert record["status"] == "update cap" and record["updates"] == 100
    # No validation at the stop: only the schedule's, and the stop's session ends at the update it saved.
    assert record["valid"]["updates"] == [50, 100] and [s["last_update"] for s in record["sessions"]] == [stopped_at, 100]


def test_study_refuses_a_second_runner_and_bad_arguments(prepared, tmp_path):
    import fcntl

    work = tmp_path / "study"
    work.mkdir()
    with open(work / ".study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = study(prepared, work, "--minutes", "0.1", "transformer_1layer", check=False)
    assert proc.returncode == 2 and "another runner is using" in proc.stderr
    for args, message in ([("--minutes", "0"), "--minutes must be positive"],
                          [("no_such_experiment",), "no config file"],
                          [("--minutes", "1", "--converged"), "not allowed with argument"],
                          [("--minutes", "1", "--max-update", "10"), "--max-update must be a positive number"]):
        proc = study(prepared, work, *args, check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    listed = script("study.sh", "--list").stdout
    assert "ablations: node_full_tol1e-2_2019bug node_separated_aug1_2019bug" in listed
    for names in [line.split(": ", 1)[1].split() for line in listed.splitlines()]:
        assert all((REPO / "configs" / f"{name}.args").is_file() for name in names)
