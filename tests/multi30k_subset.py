"""The Multi30k subset the script tests run on: the first lines of the shared files, prepared once per test
module, and the scripts run as a user runs them."""
import gzip
import hashlib
import os
import subprocess
import sys

import pytest

from helpers import REPO

SHARED = REPO.parent / "shared" / "data" / "multi30k"
SUBSET = {"train": 300, "val": 40, "test_2016_flickr": 30, "test_2017_flickr": 30, "test_2017_mscoco": 30}
ENV = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


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


