"""Multi30k preparation, experiment configs, and the train/generate/score scripts on a small subset."""
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import REPO
from node_transformer import checkpoint_safety  # noqa: F401  (torch.load of fairseq checkpoints)
from node_transformer.averaging import interval_checkpoints
from node_transformer.experiment_config import read_flags

SHARED = REPO.parent / "shared" / "data" / "multi30k"
SUBSET = {"train": 300, "val": 40, "test_2016_flickr": 30, "test_2017_flickr": 30, "test_2017_mscoco": 30}
ENV = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
CONFIGS = sorted((REPO / "configs").glob("*.args"))


def script(name, *args, env=None, check=True, timeout=900):
    proc = subprocess.run(["bash", str(REPO / "scripts" / name), *map(str, args)], capture_output=True, text=True,
                          env={**ENV, **(env or {})}, cwd=REPO, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def make_subset(directory, sums=True, drop_line=None):
    """The first lines of each shared Multi30k file, gzipped, with a matching SHA256SUMS."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    directory.mkdir(parents=True)
    lines = []
    for stem, n in SUBSET.items():
        for lang in ("en", "de"):
            name = f"{stem}.{lang}.gz"
            with gzip.open(SHARED / name, "rt", encoding="utf-8") as f:
                text = [next(f) for _ in range(n)]
            if drop_line == name:
                text = text[:-1]
            with gzip.open(directory / name, "wt", encoding="utf-8") as f:
                f.writelines(text)
            lines.append(f"{hashlib.sha256((directory / name).read_bytes()).hexdigest()}  {name}")
    if sums:
        (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi30k")
    source = make_subset(root / "raw")
    script("prepare_multi30k.sh", "--src-dir", source, "--out", root / "data", "--bpe-merges", "300")
    return root / "data"


def test_prepare_writes_fairseq_data(prepared):
    bin_dir = prepared / "bin"
    for split in ("train", "valid", "test", "test1", "test2"):
        for lang in ("en", "de"):
            assert (bin_dir / f"{split}.en-de.{lang}.bin").stat().st_size > 0
    assert (bin_dir / "dict.en.txt").read_text() == (bin_dir / "dict.de.txt").read_text()  # joined
    assert len((prepared / "raw" / "test2.de").read_text().splitlines()) == 30
    tokenized = (prepared / "tok" / "train.en").read_text().splitlines()[0]
    assert tokenized == tokenized.lower() and " ." in tokenized  # lowercased, punctuation split off
    assert "@@" in (prepared / "bpe" / "train.de").read_text()


def test_prepare_is_idempotent(prepared):
    before = (prepared / "bin" / "train.en-de.en.bin").stat().st_mtime_ns
    proc = script("prepare_multi30k.sh", "--src-dir", prepared.parent / "raw", "--out", prepared,
                  "--bpe-merges", "300")
    assert "already prepared" in proc.stdout
    assert (prepared / "bin" / "train.en-de.en.bin").stat().st_mtime_ns == before


def test_mismatched_line_counts_fail_cleanly(tmp_path):
    source = make_subset(tmp_path / "raw", sums=False, drop_line="train.de.gz")
    proc = script("prepare_multi30k.sh", "--src-dir", source, "--out", tmp_path / "data", check=False)
    assert proc.returncode != 0
    assert "train: 300 English lines but 299 German lines" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # nothing half-written left behind


def test_checksum_mismatch_and_missing_file_fail(tmp_path):
    source = make_subset(tmp_path / "raw")
    with gzip.open(source / "val.en.gz", "wt") as f:
        f.write("tampered\n" * 40)
    proc = script("prepare_multi30k.sh", "--src-dir", source, "--out", tmp_path / "data", check=False)
    assert proc.returncode != 0 and "val.en.gz: checksum mismatch" in proc.stderr
    (source / "test_2017_mscoco.de.gz").unlink()
    proc = script("prepare_multi30k.sh", "--src-dir", source, "--out", tmp_path / "data", check=False)
    assert proc.returncode != 0 and "missing test_2017_mscoco.de.gz" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_scripts_explain_bad_arguments(tmp_path):
    for name, args, message in [
        ("train.sh", [], "Usage: scripts/train.sh"),
        ("train.sh", [tmp_path / "nope.args"], "no config file"),
        ("generate.sh", [tmp_path / "no-run"], "no run directory"),
        ("prepare_multi30k.sh", ["--bpe-merges", "0"], "--bpe-merges must be positive"),
        ("prepare_multi30k.sh", ["--src-dir", tmp_path / "none"], "is not a directory"),
        ("install.sh", ["--bogus"], "unknown argument"),
        ("demo.sh", ["extra"], "Usage:"),
        ("translate.sh", [], "Usage: scripts/translate.sh"),
        ("translate.sh", [tmp_path / "no-run"], "no run directory"),
    ]:
        proc = script(name, *args, check=False)
        assert proc.returncode != 0 and message in proc.stderr, (name, proc.stderr)
    for name in ("train.sh", "generate.sh", "prepare_multi30k.sh", "demo.sh", "install.sh", "test.sh", "translate.sh"):
        proc = script(name, "--help")
        assert "Usage" in proc.stdout or "usage" in proc.stdout, name


def bare_python(directory):
    """A Python with the standard library only, like the python3 of a machine before scripts/install.sh."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True)
    python = directory / "bin" / "python"
    assert subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0
    return python


def test_help_works_before_install(tmp_path):
    bare = bare_python(tmp_path / "bare")
    env = {"PYTHON": str(tmp_path / "no-python"), "PATH": f"{bare.parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("install.sh", "test.sh", "train.sh", "generate.sh", "demo.sh", "prepare_multi30k.sh", "translate.sh",
                 "study.sh"):
        proc = script(name, "--help", env=env, check=False)
        assert proc.returncode == 0 and "usage" in proc.stdout.lower(), (name, proc.stderr)
    bare_env = {key: value for key, value in ENV.items() if key != "PYTHONPATH"}
    for path in ("scripts/score.py", "scripts/multi30k.py", "scripts/translate.py", "scripts/study.py"):
        proc = subprocess.run([bare, REPO / path, "--help"], capture_output=True, text=True, env=bare_env,
                              cwd=tmp_path)
        assert proc.returncode == 0 and "usage" in proc.stdout.lower(), (path, proc.stderr)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_config_builds_its_model(prepared, config):
    from fairseq import options, tasks

    from node_transformer.tasks.node_translation import NODETranslationTask

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser, [str(prepared / "bin"), "--user-dir", str(REPO / "node_transformer"), *read_flags(config), "--cpu"]
    )
    task = tasks.setup_task(args)
    assert isinstance(task, NODETranslationTask)
    model = task.build_model(args)
    name = config.stem
    blocks = model.node_blocks()
    assert ("enc" in blocks) == (name.startswith("node_full"))
    assert ("dec" in blocks) == name.startswith(("node", "demo"))
    assert sum(p.numel() for p in model.parameters()) > 0


def test_train_generate_and_score_the_demo(prepared, tmp_path):
    env = {"DATA": str(prepared / "bin"), "RUNS": str(tmp_path)}
    proc = script("train.sh", REPO / "configs" / "demo.args", "--max-update", "3", "--log-interval", "1", env=env)
    assert "nfe_dec_fwd" in proc.stdout and "nfe_dec_bwd" in proc.stdout
    run = tmp_path / "demo"
    assert (run / "checkpoints" / "checkpoint_best.pt").exists() and (run / "tb" / "train_inner").is_dir()
    assert "nfe_dec_fwd" in (run / "train.log").read_text()

    resumed = script("train.sh", REPO / "configs" / "demo.args", "--max-update", "4", env=env)
    assert "Loaded checkpoint" in resumed.stdout and "num_updates 4" in resumed.stdout

    bounded = script("generate.sh", run, "--subsets", "test", "--max-len-a", "0", "--max-len-b", "3", env=env)
    hypotheses = [line.split("\t")[2] for line in (run / "gen" / "test.txt").read_text().splitlines()
                  if line.startswith("H-")]
    assert len(hypotheses) == 30 and max(len(h.split()) for h in hypotheses) <= 3, hypotheses
    assert "'max_len_a': 0.0, 'max_len_b': 3" in bounded.stderr  # the user's bound replaces the default

    proc = script("generate.sh", run, env=env)
    assert "'max_len_a': 1.2, 'max_len_b': 10" in proc.stderr
    results = json.loads((run / "results.json").read_text())
    assert set(results) == {"test2016_flickr", "test2017_flickr", "test2017_mscoco"}
    for result in results.values():
        assert result["sentences"] == 30
        assert 0 <= result["tokenized_bleu"] <= 100 and 0 <= result["sacrebleu"] <= 100
        assert "case:lc" in result["sacrebleu_signature"]
        assert result["nfe_per_sentence"]["decoder"] > 0
    assert "test2016_flickr" in proc.stdout and "sacreBLEU signature" in proc.stdout


EXAMPLE = "A man in a blue shirt is riding a bike down the street."


@pytest.fixture(scope="module")
def trained_run(prepared, tmp_path_factory):
    """A few updates of node_fast_rk4 through scripts/train.sh."""
    runs = tmp_path_factory.mktemp("runs")
    script("train.sh", REPO / "configs" / "node_fast_rk4.args", "--max-update", "6", "--log-interval", "1",
           env={"DATA": str(prepared / "bin"), "RUNS": str(runs)})
    return runs / "node_fast_rk4"


def translate_script(run, *args, stdin=b""):
    proc = subprocess.run(["bash", str(REPO / "scripts" / "translate.sh"), str(run), *map(str, args)], input=stdin,
                          capture_output=True, env=ENV, cwd=REPO, timeout=600)
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8", "replace")


def test_a_run_records_what_translation_needs(prepared, trained_run):
    recorded = trained_run / "data"
    for name, original in [("dict.en.txt", prepared / "bin" / "dict.en.txt"), ("dict.de.txt", prepared / "bin" / "dict.de.txt"),
                           ("bpe.codes", prepared / "bpe" / "codes"), ("prepared.json", prepared / "prepared.json")]:
        assert (recorded / name).read_bytes() == original.read_bytes(), name


def test_typed_english_reaches_the_model_as_training_text_did(trained_run):
    from node_transformer import hub

    model = hub.load(trained_run)
    tokens = model.encode(EXAMPLE)
    assert model.src_dict.unk() not in tokens.tolist()
    prepared = model.tokenize(EXAMPLE)
    assert prepared.replace("@@ ", "") == "a man in a blue shirt is riding a bike down the street ."


def test_script_and_api_agree_and_keep_the_order(trained_run):
    from node_transformer import hub

    lines = [EXAMPLE, "", "Two dogs are playing in the snow.", "A woman sings on a stage!"]
    code, out, err = translate_script(trained_run, "--beam", "3", stdin="\n".join(lines).encode() + b"\n")
    assert code == 0, err
    api = hub.load(trained_run).translate(lines, beam=3)
    assert out.splitlines() == api and len(api) == 4 and api[1] == "" and all(api[i] for i in (0, 2, 3))


def test_translations_are_bounded_and_the_bound_is_a_flag(trained_run):
    from node_transformer import hub

    model = hub.load(trained_run)
    source_tokens = len(model.encode(EXAMPLE))  # with its end-of-sentence token, as fairseq counts it
    default = model.translate(EXAMPLE)
    assert 0 < len(default.split()) <= 1.2 * source_tokens + 10
    code, out, err = translate_script(trained_run, "--max-len-a", "0", "--max-len-b", "2", stdin=EXAMPLE.encode())
    assert code == 0, err
    assert out.splitlines() == [model.translate(EXAMPLE, max_len_a=0, max_len_b=2)]
    assert len(out.split()) <= 2
    for flags, message in ((("--max-len-a", "-1"), "--max-len-a must not be negative"),
                           (("--max-len-a", "0", "--max-len-b", "0"), "leaves no room for a word")):
        code, _, err = translate_script(trained_run, *flags, stdin=EXAMPLE.encode())
        assert code == 2 and message in err, err


def test_bad_lines_get_a_message_and_an_empty_line_and_nothing_is_lost(trained_run, tmp_path):
    from node_transformer import hub

    text = tmp_path / "input.txt"
    text.write_bytes(EXAMPLE.encode() + b"\n" + b"caf\xe9 latte\n" + ("word " * 1500).encode() + b"\n"
                     + b"A dog runs.\n")
    code, out, err = translate_script(trained_run, "--verbose", text)
    assert code == 0, err
    outputs = out.splitlines()
    assert len(outputs) == 4 and outputs[1] == outputs[2] == ""
    assert "line 2 is not UTF-8" in err and "line 3 is" in err and "the model takes at most" in err
    assert [outputs[0], outputs[3]] == hub.load(trained_run).translate([EXAMPLE, "A dog runs."])
    assert "S-1\t" in err and "H-4\t" in err and "NFE-4\tdecoder" in err
    with pytest.raises(hub.TranslationInputError, match="sentence 2 is .* tokens long"):
        hub.load(trained_run).translate(["fine", "word " * 1500])


def test_a_run_that_recorded_no_data(trained_run, tmp_path, monkeypatch):
    import shutil

    from node_transformer import hub

    old = tmp_path / "old_run"
    shutil.copytree(trained_run, old)
    shutil.rmtree(old / "data")  # as runs trained before node-transformer 0.2
    assert hub.load(old).translate(EXAMPLE) == hub.load(trained_run).translate(EXAMPLE)  # found via the checkpoint
    monkeypatch.setattr(hub, "_data_from_checkpoint", lambda cfg: None)  # ... and that data gone too
    with pytest.raises(FileNotFoundError, match="records no data.*pass the prepared data directory"):
        hub.load(old)
    code, _, err = translate_script(old, "--data", tmp_path / "nowhere", stdin=b"A dog.\n")
    assert code != 0 and "nowhere" in err


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
    assert set(record["translation"]) == {"test2016_flickr", "test2017_flickr", "test2017_mscoco"}
    assert "--max-update 8" in " ".join(record["flags"]) and "--dropout 0.3" in " ".join(record["flags"])
    assert "| transformer_1layer | - | update cap | 8 |" in (out / "study.md").read_text()
    assert (out / "figures" / "best_valid_loss_vs_updates.png").is_file()

    # As if cut while training after update 4's checkpoint: its log without the end, its later checkpoints gone.
    log = run / "train.log"
    log.write_text(log.read_text().split("fairseq_cli.train | done training")[0])
    shutil.copy(checkpoints[1], run / "checkpoints" / "checkpoint_last.pt")
    for path in (*checkpoints[2:], run / "study_result.json", run / "checkpoints" / "checkpoint_averaged.pt"):
        path.unlink()
    resumed = study(prepared, work, *command)
    assert "transformer_1layer: training (converged schedule)" in resumed.stdout
    text = log.read_text()
    assert text.count("| training on ") == 2 and "Loaded checkpoint" in text.split("| training on ")[2]
    assert re.search(r"Loaded checkpoint \S+checkpoint_last.pt \(epoch \d+ @ 4 updates\)", text)  # not from scratch
    assert json.loads((out / "records" / "transformer_1layer.json").read_text())["updates"] == 8

    kept = study(prepared, work, *command)
    assert "transformer_1layer: kept (finished earlier)" in kept.stdout
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


def test_study_refuses_a_second_runner_and_bad_arguments(prepared, tmp_path):
    import fcntl

    work = tmp_path / "study"
    work.mkdir()
    with open(work / ".study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = study(prepared, work, "--minutes", "0.1", "transformer_1layer", check=False)
    assert proc.returncode == 2 and "another study runner" in proc.stderr
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
