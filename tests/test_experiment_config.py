"""The experiment-file format: flags, comments, quoting, includes and overrides (node_experiments.experiment_config)."""
import subprocess
import sys

import pytest

from helpers import REPO
from node_experiments.experiment_config import flag_value, read_flag_groups, read_flags, without_flag


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_include_comes_first_and_the_including_file_overrides(tmp_path):
    write(tmp_path / "base" / "shared.args", "# shared\n--lr 0.001 --dropout 0.3\n--share-all-embeddings\n--max-tokens 4096\n")
    config = write(tmp_path / "exp.args", "# mine\n@base/shared.args\n--node-decoder\n--dropout 0.1  # less\n")
    assert read_flags(config) == ["--lr", "0.001", "--share-all-embeddings", "--max-tokens", "4096",
                                  "--node-decoder", "--dropout", "0.1"]


def test_quotes_keep_a_value_whole_and_negative_numbers_are_values(tmp_path):
    config = write(tmp_path / "exp.args", "--eval-bleu-args '{\"beam\": 1}'\n--adam-betas (0.9,0.98)\n--min-lr -1\n")
    assert read_flag_groups(config) == {"--eval-bleu-args": ['{"beam": 1}'], "--adam-betas": ["(0.9,0.98)"],
                                        "--min-lr": ["-1"]}


@pytest.mark.parametrize("text, message", [
    ("@missing.args\n", "no config file"),
    ("@exp.args\n", "includes itself"),
    ("0.1 --lr\n", "comes before any --flag"),
    ("@a.args @b.args\n", "one file name"),
])
def test_bad_files_name_the_problem(tmp_path, text, message):
    config = write(tmp_path / "exp.args", text)
    with pytest.raises((OSError, ValueError), match=message):
        read_flags(config)


def test_every_experiment_builds_on_the_shared_file():
    """Each experiment includes a shared file of its kind (translation, masked LM, fine-tuning) or another
    experiment (a variant of it, like the demo with a regulariser or an ablation), so every chain ends at a
    shared file; it adds only flags it names itself."""
    bases = {f"base/{name}.args": read_flag_groups(REPO / "configs" / "base" / f"{name}.args")
             for name in ("multi30k", "masked_lm", "pairs")}
    for config in sorted((REPO / "configs").glob("*.args")):
        lines = config.read_text().splitlines()
        includes = [line[1:] for line in lines if line.startswith("@")]
        assert len(includes) == 1, config.name
        parent = config.parent / includes[0]
        assert includes[0] in bases or parent.parent == config.parent, config.name
        chain = config
        while (include := next(line[1:] for line in chain.read_text().splitlines() if line.startswith("@"))) not in bases:
            chain = chain.parent / include
        flags = read_flag_groups(config)
        own = {flag for line in lines if not line.startswith(("#", "@")) for flag in line.split() if flag.startswith("--")}
        assert set(bases[include]) <= set(flags) and flags.keys() - read_flag_groups(parent).keys() <= own, config.name


def test_command_line_prints_the_words_and_fails_cleanly(tmp_path):
    config = write(tmp_path / "exp.args", "--lr 0.1\n")
    run = [sys.executable, "-m", "node_experiments.experiment_config"]
    proc = subprocess.run([*run, str(config)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.splitlines() == ["--lr", "0.1"]
    proc = subprocess.run([*run, str(tmp_path / "none.args")], capture_output=True, text=True)
    assert proc.returncode == 2 and "no config file" in proc.stderr


def test_a_flags_value_is_its_last_setting_and_it_can_be_left_out():
    words = ["--max-update", "3000", "--lr", "-0.5", "--max-update", "8000", "--cpu"]
    assert flag_value(words, "--max-update") == "8000" and flag_value(words, "--lr") == "-0.5"
    assert flag_value(words, "--patience") is None and flag_value(words, "--patience", "5") == "5"
    assert flag_value(["--cpu"], "--cpu") is None  # no value word after it
    assert without_flag(words, "--max-update") == ["--lr", "-0.5", "--cpu"]
    assert without_flag(words, "--patience") == words
