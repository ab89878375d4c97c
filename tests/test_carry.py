"""A converged study on a new machine: runs finished in committed records are kept, not trained again, and an
unfinished run carried through the repository (node_experiments/carry.py) resumes from its copy. Run
directories, records and checkpoints are written here as the runner and fairseq write them; the slow
test_study.py carries a run that really trained."""
import json
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import torch

from multi30k_subset import script
from test_study_progress import lay_out, log, study_runner
from node_experiments import study_progress, yardstick
from node_experiments.carry import CarryError
from node_experiments.run_dir import RunDir, TranslationError
from node_experiments.runner import RESULT_FILE, STARTED_FILE, Experiment, Runner, RunnerStopped
from node_experiments.study_record import record_from_log
from node_experiments.study_record import write as write_record

PLATEAU = log([5.0, 4.0, 4.5, 4.5, 4.5, 4.5, 4.5], 1400, plateau=True)


def new_machine(tmp_path, **options):
    """A runner with no run directories yet, and the repository's records and carry."""
    runner = study_runner(tmp_path / "runs")
    return Runner(runner.budget, runner.work, runner.data, runner.subsets, records=tmp_path / "out" / "records",
                  carry=tmp_path / "out" / "carry", **options)


def fake_training(monkeypatch, found):
    """RunDir.train as fairseq-train finds the run directory when it starts: FOUND gets its files."""
    def fairseq_train(self, data, flags, **_):
        last = self.checkpoint("checkpoint_last.pt")
        found.update(last=last.read_bytes() if last.is_file() else None, log=self.log_text(),
                     started=(self.path / STARTED_FILE).read_text(),
                     files=sorted(p.name for p in self.checkpoints.glob("*.pt")))
        return 0

    monkeypatch.setattr(RunDir, "train", fairseq_train)


def record(runner, experiment, log_text, fingerprint=None):
    flags = runner.flags(experiment)
    made = record_from_log(experiment.name, flags, log_text, {}, fingerprint=fingerprint or runner.fingerprint(flags))
    write_record(made, runner.records)
    return made


def save_checkpoint(path, updates):
    """What fairseq's checkpoint_last.pt holds of its progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"optimizer_history": [{"num_updates": updates}], "model": {"w": torch.ones(2)}}, path)


def test_a_finished_record_keeps_its_run_and_no_other(tmp_path):
    runner = new_machine(tmp_path)
    plateau, capped, other_cap, other_flags, unfinished = (
        Experiment.from_config("transformer_1layer"), Experiment.from_config("demo_kinetic", 3000),
        Experiment.from_config("node_decoder_aug1", 2000), Experiment.from_config("transformer_tiny"),
        Experiment.from_config("node_separated_aug1"))
    record(runner, plateau, PLATEAU)
    record(runner, capped, log([5.0] * 15, 3000) + "x | INFO | fairseq_cli.train | done training in 9.0 seconds\n")
    record(runner, Experiment.from_config("node_decoder_aug1", 3000),  # its cap was 3000 then, 2000 now
           log([5.0] * 15, 3000) + "x | INFO | fairseq_cli.train | done training in 9.0 seconds\n")
    record(runner, other_flags, PLATEAU, fingerprint="another fingerprint")
    record(runner, unfinished, log([5.0, 4.9], 450))
    assert runner.recorded(plateau).status == "plateau" and runner.recorded(capped).updates == 3000
    assert runner.recorded(other_cap) is None and runner.recorded(other_flags) is None
    assert runner.recorded(unfinished) is None
    # A run directory of the same flags is the newer word: it resumes, whatever the record says.
    lay_out(runner, plateau, log([5.0], 200))
    assert runner.recorded(plateau) is None

    shown = study_progress.progress(runner, capped)
    assert (shown.state, shown.how, shown.updates, shown.cap) == ("finished", "update cap (recorded)", 3000, 3000)
    assert (shown.least_updates_left, shown.most_updates_left, shown.best_valid_loss) == (0, 0, 5.0)


def test_the_runner_keeps_recorded_runs_without_training_them(tmp_path, capsys):
    runner = new_machine(tmp_path)
    experiment = Experiment.from_config("transformer_1layer")
    record(runner, experiment, PLATEAU)
    assert runner.run_all([experiment]) == []  # had it trained, fairseq would have failed on the missing data
    assert "transformer_1layer: kept (recorded: plateau, 1400 updates)" in capsys.readouterr().out
    assert runner.kept == ["transformer_1layer"] and not (runner.work / "transformer_1layer").exists()


def test_an_unfinished_run_is_carried_restored_and_dropped_once_finished(tmp_path, monkeypatch):
    runner = new_machine(tmp_path, yardstick=True)
    experiment = Experiment.from_config("node_separated_aug1")
    run = runner.run_dir(experiment)
    assert runner.carry_out(experiment) == "nothing to carry"
    lay_out(runner, experiment, log([5.0, 4.0, 4.2], 650))
    save_checkpoint(run.checkpoint("checkpoint_last.pt"), 600)
    save_checkpoint(run.checkpoint("checkpoint_1_600.pt"), 600)  # interval checkpoints stay behind
    assert runner.carry_out(experiment) == "carried at update 600"
    carried = runner.carried(experiment)
    assert carried.path == tmp_path / "out" / "carry" / "node_separated_aug1"
    assert sorted(str(p.relative_to(carried.path)) for p in carried.path.rglob("*") if p.is_file()) == \
        ["checkpoints/checkpoint_last.pt", STARTED_FILE, "train.log"]
    assert carried.train_log.read_text() == run.train_log.read_text()

    # On the next machine: nothing but the repository. --progress reads the carried copy.
    shutil.rmtree(runner.work)
    assert runner.carry_out(experiment) == "carried as it was"  # a new machine never empties the carry
    shown = study_progress.progress(runner, experiment)
    assert (shown.state, shown.how, shown.updates, shown.best_valid_loss) == ("unfinished", "carried", 650, 4.0)

    # Training restores it first: what fairseq-train finds in the run directory when it starts.
    found = {}
    fake_training(monkeypatch, found)
    monkeypatch.setattr(yardstick, "measure", lambda runner, scratch: 0.9)  # its own test: test_study.py
    flags = runner.flags(experiment)
    assert runner.train(experiment, flags, runner.fingerprint(flags)) is None
    carried_log, restored = carried.train_log.read_text(), found.pop("log")  # then this machine's yardstick
    assert restored.startswith(carried_log) and yardstick.seconds_in(restored[len(carried_log):]) == 0.9
    assert found == {"last": carried.checkpoint("checkpoint_last.pt").read_bytes(), "started": runner.fingerprint(flags),
                     "files": ["checkpoint_last.pt"]}

    # Finished (its record committed): the carried copy goes, and is not restored again.
    record(runner, experiment, PLATEAU)
    shutil.rmtree(runner.work)
    assert runner.carry_out(experiment) == "finished: its carried copy removed"
    assert not carried.path.exists() and runner.carried(experiment) is None


def test_a_carried_copy_of_other_flags_or_past_the_cap_is_not_restored(tmp_path):
    runner = new_machine(tmp_path)
    experiment = Experiment.from_config("demo_kinetic", 3000)
    lay_out(runner, experiment, log([5.0] * 16, 3200))  # trained past today's cap of 3000
    save_checkpoint(runner.run_dir(experiment).checkpoint("checkpoint_last.pt"), 3200)
    assert runner.carry_out(experiment) == "nothing to carry"
    other = Runner(runner.budget, runner.work, runner.data, runner.subsets, carry=runner.work)  # the runs as carry
    assert other.carried(Experiment.from_config("demo_kinetic", 4000)) is not None
    assert other.carried(experiment) is None
    lay_out(runner, Experiment.from_config("node_decoder_aug1"), log([5.0], 200), started_as="another fingerprint")
    save_checkpoint(runner.run_dir(Experiment.from_config("node_decoder_aug1")).checkpoint("checkpoint_last.pt"), 200)
    assert other.carried(Experiment.from_config("node_decoder_aug1")) is None


def test_a_half_written_checkpoint_is_not_carried(tmp_path):
    runner = new_machine(tmp_path)
    experiment = Experiment.from_config("node_separated_aug1")
    lay_out(runner, experiment, log([5.0], 250))
    last = runner.run_dir(experiment).checkpoint("checkpoint_last.pt")
    save_checkpoint(last, 200)
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(CarryError, match="checkpoint_last.pt does not load as a fairseq checkpoint"):
        runner.carry_out(experiment)
    assert not (tmp_path / "out" / "carry" / "node_separated_aug1" / "train.log").exists()


def test_carry_on_the_command_line(tmp_path):
    runner = new_machine(tmp_path)
    experiment = Experiment.from_config("node_separated_aug1")
    lay_out(runner, experiment, log([5.0, 4.0], 450))
    save_checkpoint(runner.run_dir(experiment).checkpoint("checkpoint_last.pt"), 400)
    common = ["--work", runner.work, "--out", tmp_path / "out"]
    done = script("study.sh", "--carry", *common, "node_separated_aug1", "transformer_tiny").stdout
    assert done == "node_separated_aug1: carried at update 400\ntransformer_tiny: nothing to carry\n"
    runner.run_dir(experiment).train_log.write_text(log([5.0, 4.0, 3.9], 650))  # trained on after the carry
    plan = script("study.sh", "--converged", "--progress", *common).stdout
    assert "| node_separated_aug1 | unfinished | 650 / 8000 |" in plan  # its own run directory, not the copy
    for refused, message in [(["--minutes", "1", "--carry"], "--carry is about the converged study's runs"),
                             (["--carry", "--progress"], "--progress and --carry: one at a time")]:
        proc = script("study.sh", *refused, *common, check=False)
        assert proc.returncode == 2 and message in proc.stderr


def test_the_further_of_a_kept_run_directory_and_its_carried_copy_trains_on(tmp_path, monkeypatch):
    """A machine that kept its run directory at update 600 while another machine took the carried copy to
    1400: the copy is restored whole (none of the older interval checkpoints stays), and --carry here does
    not overwrite it with the older run."""
    runner = new_machine(tmp_path)
    experiment = Experiment.from_config("node_separated_aug1")
    run, carried = runner.run_dir(experiment), RunDir(tmp_path / "out" / "carry" / "node_separated_aug1")
    lay_out(runner, experiment, log([5.0, 4.0, 4.2], 650))
    save_checkpoint(run.checkpoint("checkpoint_last.pt"), 600)
    save_checkpoint(run.checkpoint("checkpoint_3_600.pt"), 600)
    assert runner.carry_out(experiment) == "carried at update 600"
    carried.train_log.write_text(log([5.0, 4.0, 4.2, 4.1, 4.0, 3.9, 3.8], 1450))  # trained on elsewhere
    save_checkpoint(carried.checkpoint("checkpoint_last.pt"), 1400)
    assert runner.carry_out(experiment) == ("not carried: the carried copy is further along (update 1400) than "
                                            "this machine's run")
    found = {}
    fake_training(monkeypatch, found)
    flags = runner.flags(experiment)
    runner.train(experiment, flags, runner.fingerprint(flags))
    assert found["last"] == carried.checkpoint("checkpoint_last.pt").read_bytes()
    assert found["files"] == ["checkpoint_last.pt"] and found["log"] == carried.train_log.read_text()

    # Further here than the copy: the run directory trains on as it is, and --carry replaces the copy.
    save_checkpoint(run.checkpoint("checkpoint_last.pt"), 1600)
    run.train_log.write_text(log([5.0, 4.0, 4.2, 4.1, 4.0, 3.9, 3.8, 3.7], 1650))
    runner.train(experiment, flags, runner.fingerprint(flags))
    assert found["last"] == run.checkpoint("checkpoint_last.pt").read_bytes()
    assert runner.carry_out(experiment) == "carried at update 1600"


BUDGET_STOP_LOG = (
    "x | WARNING | node_transformer.tasks.node_policies | skipping batch at update 970: step budget exceeded\n"
    "node_transformer.tasks.node_policies.NODETrainingStopped: 10 consecutive batches exceeded the solver budget, "
    "last at update 970: step budget max_num_steps=1000 exceeded\n")


def finish_test_set(run, subset, speed):
    """A test set translated as RunDir.translate leaves it, made with MADE_WITH."""
    run.gen.mkdir(parents=True, exist_ok=True)
    run.generation(subset).write_text(f"H-0\t-0.5\tein {subset}\n")
    run.generation_log(subset).write_text(f"Translated 1 sentences in 1.0s ({speed} sentences/s)\n")
    run.generation_done(subset).write_text(json.dumps({"made_with": MADE_WITH, "sentences_per_second": speed}))


MADE_WITH = {"checkpoint_sha256": "d1", "data": "data", "flags": ["--beam", "5"]}


@pytest.mark.parametrize("ending", ["plateau", "budget stop"])
def test_a_run_trained_but_not_translated_is_carried_with_its_finished_test_sets(tmp_path, monkeypatch, capsys,
                                                                                 ending):
    """On 2 cores a slow model's test set takes hours: a run stopped while translating is carried with its final
    model and the test sets it finished, and a new machine translates the rest without training again. A run
    its solves' step budget stopped has finished training too: training again would only repeat the stop."""
    runner = new_machine(tmp_path)
    experiment = Experiment.from_config("node_separated_aug1")
    trained_log = (log([5.0, 4.0] + [4.5] * 5, 1400, plateau=True) if ending == "plateau"
                   else log([5.0, 4.0, 4.2, 4.1], 950) + BUDGET_STOP_LOG)
    lay_out(runner, experiment, trained_log)
    run = runner.run_dir(experiment)
    save_checkpoint(run.checkpoint("checkpoint_last.pt"), 1400)
    final = runner.budget.final_checkpoint(run)
    finish_test_set(run, "test", 9.5)
    run.generation("test1").write_text("H-0\thalf of a test set\n")  # cut while translating: not carried
    assert runner.carry_out(experiment) == ("trained, carried with its final model and 1 finished translation(s) "
                                            "to go on from")
    carried = RunDir(runner.carry / experiment.name)
    assert carried.checkpoint(final.name).read_bytes() == final.read_bytes()
    assert carried.finished_translations() == ["test"] and not carried.generation("test1").exists()

    shutil.rmtree(runner.work)  # the new machine
    monkeypatch.setattr(RunDir, "train", lambda *_, **__: pytest.fail("trained again"))
    found = {}

    def translate(self, data, checkpoint, subsets, **options):
        found.update(checkpoint=Path(checkpoint).read_bytes(), finished=self.finished_translations(), options=options,
                     speed=self.translated_earlier("test", MADE_WITH))
        return {}

    monkeypatch.setattr(RunDir, "translate", translate)
    result = runner.run(experiment)
    assert f"node_separated_aug1: restored from {carried.path}" in capsys.readouterr().out
    assert found["checkpoint"] == final.read_bytes() and found["finished"] == ["test"] and found["speed"] == 9.5
    assert found["options"]["keep_finished"]
    if ending == "plateau":
        assert result.stopped is None
    else:
        assert result.stopped.startswith("NODETrainingStopped: 10 consecutive batches exceeded the solver budget")


def test_a_runner_asked_to_stop_while_translating_stops_at_once(tmp_path, monkeypatch):
    """fairseq-generate is stopped at once (a test set can take hours); the runner stops, it records nothing."""
    runner = study_runner(tmp_path)
    experiment = Experiment.from_config("node_separated_aug1")
    lay_out(runner, experiment, log([5.0, 4.0] + [4.5] * 5, 1400, plateau=True))
    save_checkpoint(runner.run_dir(experiment).checkpoint("checkpoint_last.pt"), 1400)
    generate = {}

    def translate(self, data, checkpoint, subsets, *, started, **_):
        with subprocess.Popen(["sleep", "60"]) as generate["process"]:
            started(generate["process"])
            threading.Timer(0.2, runner.request_stop).start()
            generate["process"].wait(timeout=30)
        raise TranslationError("fairseq-generate exited with -15")

    monkeypatch.setattr(RunDir, "translate", translate)
    with pytest.raises(RunnerStopped, match="node_separated_aug1 while translating"):
        runner.run(experiment)
    assert generate["process"].returncode == -signal.SIGTERM and runner.translating is None
    assert not (runner.run_dir(experiment).path / RESULT_FILE).exists()


def test_a_carried_run_without_a_best_checkpoint_still_has_a_final_model(tmp_path):
    """fairseq writes checkpoint_best.pt only at a validation that matches the best so far: a run carried in
    its last validations, none better after the move, has interval checkpoints and checkpoint_last.pt alone."""
    runner = new_machine(tmp_path)
    run = runner.run_dir(Experiment.from_config("node_separated_aug1"))
    for updates in (1200, 1400):
        save_checkpoint(run.checkpoint(f"checkpoint_9_{updates}.pt"), updates)
    save_checkpoint(run.checkpoint("checkpoint_last.pt"), 1400)
    final = runner.budget.final_checkpoint(run)
    assert torch.load(final)["averaged_checkpoints"] == ["checkpoint_9_1200.pt", "checkpoint_9_1400.pt"]


def test_a_broken_carried_copy_is_said_and_the_run_starts_afresh(tmp_path, monkeypatch, capsys):
    runner = new_machine(tmp_path)
    experiment = Experiment.from_config("node_separated_aug1")
    lay_out(runner, experiment, log([5.0], 250))
    save_checkpoint(runner.run_dir(experiment).checkpoint("checkpoint_last.pt"), 200)
    runner.carry_out(experiment)
    shutil.rmtree(runner.work)
    last = runner.carried(experiment).checkpoint("checkpoint_last.pt")
    last.write_bytes(last.read_bytes()[:100])
    found = {}
    fake_training(monkeypatch, found)
    flags = runner.flags(experiment)
    runner.train(experiment, flags, runner.fingerprint(flags))
    assert "node_separated_aug1: not resuming from" in capsys.readouterr().out
    assert found["last"] is None and found["log"] == ""  # from scratch, the copy left as it was for a look
    assert last.is_file()
