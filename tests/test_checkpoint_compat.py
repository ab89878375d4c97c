"""Checkpoints written by earlier versions load and translate exactly as they did (tests/data/pre_refactor)."""
import pytest

from helpers import REPO, USER_DIR, run_cli

FIXTURES = REPO / "tests" / "data" / "pre_refactor"


def _hypotheses(text):
    """{sentence id: (tokens, score, positional scores)} from fairseq-generate's H- and P- lines."""
    hypos = {}
    for line in text.splitlines():
        kind, _, rest = line.partition("-")
        if kind not in ("H", "P") or "\t" not in rest:
            continue
        fields = rest.split("\t")
        entry = hypos.setdefault(int(fields[0]), {})
        if kind == "H":
            entry["tokens"], entry["score"] = fields[2], float(fields[1])
        else:
            entry["positional"] = [float(x) for x in fields[1].split()]
    return hypos


@pytest.mark.parametrize("name", ["full_aug_timedep", "separated_aug"])
def test_pre_refactor_checkpoint_generates_the_same(name):
    proc = run_cli("fairseq-generate", FIXTURES / "bin", "--user-dir", USER_DIR, "--path", FIXTURES / f"{name}.pt",
                   "--beam", "5", "--cpu", "--max-tokens", "1000", "--max-len-b", "12",
                   "--required-batch-size-multiple", "1")
    expected = _hypotheses((FIXTURES / f"{name}.expected.txt").read_text())
    got = _hypotheses(proc.stdout)
    assert len(expected) == 12 and got.keys() == expected.keys()
    for index, reference in expected.items():
        assert got[index]["tokens"] == reference["tokens"], index
        assert got[index]["score"] == pytest.approx(reference["score"], abs=1e-4), index
        assert got[index]["positional"] == pytest.approx(reference["positional"], abs=1e-4), index
