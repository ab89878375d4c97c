"""Multi30k preparation, experiment configs, and the train/generate/score scripts on a small subset."""
import gzip
import json
import os
import subprocess
import sys

import pytest

from helpers import REPO
from multi30k_subset import ENV, make_subset, prepared, script  # noqa: F401  (prepared: a fixture)
from node_experiments.experiment_config import read_flags

pytestmark = pytest.mark.slow  # fairseq subprocesses (the 'slow' marker: tests/conftest.py)

CONFIGS = [config for config in sorted((REPO / "configs").glob("*.args"))  # the translation experiments
           if read_flags(config)[read_flags(config).index("--task") + 1] == "node_translation"]


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

    proc = script("generate.sh", run, "--max-len-a", "0", "--max-len-b", "8", env=env)  # 4 updates: cheap output
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


def test_a_shipped_model_translates_as_its_run_without_optimiser_state(trained_run, tmp_path):
    import torch

    from node_experiments.ship import ShipError, ship
    from node_transformer import hub

    shipped = ship(trained_run, tmp_path / "models" / "rk4", checkpoint="checkpoint_best.pt")
    original = trained_run / "checkpoints" / "checkpoint_best.pt"
    state = torch.load(shipped, map_location="cpu")
    assert "last_optimizer_state" not in state and shipped.stat().st_size < original.stat().st_size / 2
    model_dir = tmp_path / "models" / "rk4"
    assert (model_dir / "data" / "bpe.codes").read_bytes() == (trained_run / "data" / "bpe.codes").read_bytes()
    expected = hub.load(trained_run).translate([EXAMPLE, "A dog runs."])
    assert hub.load(model_dir).translate([EXAMPLE, "A dog runs."]) == expected
    code, out, err = translate_script(model_dir, stdin=(EXAMPLE + "\nA dog runs.\n").encode())
    assert code == 0 and out.splitlines() == expected, err
    assert "# node_fast_rk4" in (model_dir / "MODEL.md").read_text()
    for kwargs, message in (({"out": model_dir}, "exists: ship into a new directory"),
                            ({"out": tmp_path / "big", "max_mb": 0.01}, "MB without optimiser state, over --max-mb 0.01"),
                            ({"out": tmp_path / "none", "checkpoint": "checkpoint_9.pt"}, "no checkpoint checkpoint_9.pt")):
        with pytest.raises(ShipError, match=message):
            ship(trained_run, **{"checkpoint": "checkpoint_best.pt", **kwargs})
    assert not (tmp_path / "big").exists() and not (tmp_path / "none").exists()  # nothing half-shipped


def test_a_study_translation_keeps_the_test_sets_it_finished(prepared, trained_run):
    """The study runner translates with keep_finished: a test set finished with the same checkpoint, data and
    flags is kept (an interrupted translation goes on with the next); any other change translates it again."""
    from node_experiments.run_dir import RunDir

    run = RunDir(trained_run)
    first = run.translate(prepared / "bin", subsets=("test", "test1"), keep_finished=True)
    written = {subset: run.generation(subset).stat().st_mtime_ns for subset in ("test", "test1")}
    assert run.finished_translations() == ["test", "test1"]
    assert run.translate(prepared / "bin", subsets=("test", "test1"), keep_finished=True) == first
    assert written == {subset: run.generation(subset).stat().st_mtime_ns for subset in ("test", "test1")}

    run.generation_done("test1").unlink()  # as if stopped while translating test1
    again = run.translate(prepared / "bin", subsets=("test", "test1"), keep_finished=True)
    assert again["test2016_flickr"] == first["test2016_flickr"]  # kept, with its speed
    without_speed = [{key: value for key, value in scores.items() if key != "sentences_per_second"}
                     for scores in (again["test2017_flickr"], first["test2017_flickr"])]
    assert without_speed[0] == without_speed[1]  # translated again: the same translations
    assert run.generation("test").stat().st_mtime_ns == written["test"]
    assert run.generation("test1").stat().st_mtime_ns != written["test1"]
    assert "sentences/s" in run.generate_log.read_text()

    run.translate(prepared / "bin", subsets=("test",), extra_flags=("--max-len-b", "2"), keep_finished=True)
    assert run.generation("test").stat().st_mtime_ns != written["test"]  # other flags: translated again
    assert "'max_len_b': 2" in run.generation_log("test").read_text()


def test_a_test_set_translated_in_shards_is_translated_as_in_one_piece(prepared, trained_run):
    """Each shard is every N-th batch of the whole set (fairseq-generate's --distributed-world-size and
    --distributed-rank): the same batches, so the same translations and scores as one call; never more shards
    than the set has batches (an empty one would fail), and each finished shard is kept."""
    from node_experiments.run_dir import MAX_TOKENS, RunDir, least_batches
    from node_experiments.scoring import read_generation

    run = RunDir(trained_run)
    whole = run.translate(prepared / "bin", subsets=("test",), extra_flags=("--max-tokens", "200"))
    one_piece = read_generation(run.generation("test"))
    assert least_batches(prepared / "bin", "test", 200) >= 3 and least_batches(prepared / "bin", "test", MAX_TOKENS) == 1
    run.generation_done("test").unlink()  # else kept: a translation in shards is the one translation
    sharded = run.translate(prepared / "bin", subsets=("test",), extra_flags=("--max-tokens", "200"), shards=3,
                            keep_finished=True)
    shards = sorted(path.name for path in run.gen.glob("test.*of3.txt"))
    assert shards == ["test.1of3.txt", "test.2of3.txt", "test.3of3.txt"]
    assert all(read_generation(run.gen / name)[2] for name in shards)  # none empty
    in_shards = read_generation(run.generation("test"))
    assert in_shards[:3] == one_piece[:3]  # hypotheses, references and ids
    assert in_shards[3] == pytest.approx(one_piece[3], abs=0.1)  # NFE per sentence (each shard's to one decimal)
    for key in ("tokenized_bleu", "sacrebleu", "sentences"):
        assert sharded["test2016_flickr"][key] == whole["test2016_flickr"][key]

    run.generation_done("test").unlink()  # stopped after its shards, before they were joined
    run.generation_done("test.3of3").unlink()  # ... or while translating the last one
    written = {name: (run.gen / name).stat().st_mtime_ns for name in shards}
    run.translate(prepared / "bin", subsets=("test",), extra_flags=("--max-tokens", "200"), shards=3,
                  keep_finished=True)
    assert [(run.gen / name).stat().st_mtime_ns == written[name] for name in shards] == [True, True, False]
    assert read_generation(run.generation("test"))[:3] == one_piece[:3]
