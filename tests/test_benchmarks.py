"""The benchmarks' quick mode: every benchmark runs and produces its numbers (no timing is asserted)."""
import re
import subprocess
import sys

import pytest

from helpers import REPO

pytestmark = pytest.mark.slow  # every benchmark's quick mode (the 'slow' marker: tests/conftest.py)


def test_quick_benchmarks_produce_their_tables(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench.py"), "--quick", "--out", tmp_path / "out",
                           "--work", tmp_path / "work"], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected_rows = {"overhead": 1, "solver_share": 2, "seminorm": 4, "update_cost": 9, "generation": 5,
                     "gradient_modes": 6, "side_by_side": 2}
    for name, rows in expected_rows.items():
        text = (tmp_path / "out" / f"{name}.md").read_text()
        assert text in proc.stdout
        body = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| state")]
        data_rows = [line for line in body if re.search(r"\| [\d.]+%? \|", line)]
        assert len(data_rows) == rows, (name, text)
    overhead = (tmp_path / "out" / "overhead.md").read_text().splitlines()[-3]
    nfe_plain, nfe_ext = overhead.strip("| ").split(" | ")[-2:]
    assert int(nfe_plain) == int(nfe_ext) > 0  # the same solve, counted the same
