"""The package as pip builds it: the wheel holds every module of the fairseq plugin, of odeint_ext and of the
tooling (node_experiments; an
installed copy, not only the editable one of scripts/install.sh, must work as a --user-dir)."""
import shutil
import subprocess
import sys
import zipfile

import pytest

from helpers import REPO

PACKAGES = ("node_transformer", "odeint_ext", "node_experiments")

pytestmark = pytest.mark.slow  # fairseq subprocesses (the 'slow' marker: tests/conftest.py)


def test_the_wheel_holds_every_module_of_the_plugin_odeint_ext_and_the_tooling(tmp_path):
    # pip builds in the source tree (build/, *.egg-info): build a copy, so the checkout stays clean.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.py", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "-q", "-w", str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("node_transformer-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {path.relative_to(REPO).as_posix() for package in PACKAGES
               for path in (REPO / package).rglob("*.py")}
    assert {"node_transformer/models/node_transformer.py", "node_transformer/tasks/node_translation.py",
            "node_transformer/modules/ode_function.py", "odeint_ext/solve.py", "node_experiments/runner.py"} <= sources
    assert sources - shipped == set()


def test_an_installed_copy_is_a_user_dir(tmp_path):
    """The wheel installed elsewhere (not the checkout) registers the model and task for fairseq, and its
    --user-dir is the installed package's directory."""
    dist = tmp_path / "dist"
    test_the_wheel_holds_every_module_of_the_plugin_odeint_ext_and_the_tooling(tmp_path)
    (wheel,) = dist.glob("node_transformer-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q",
                    "--target", str(site), str(wheel)], check=True, capture_output=True, timeout=300)
    script = ("import argparse, sys; from fairseq import utils; from fairseq.models import ARCH_MODEL_REGISTRY; "
              "from fairseq.tasks import TASK_REGISTRY; "
              "utils.import_user_module(argparse.Namespace(user_dir=sys.argv[1])); "
              "import node_transformer; print(node_transformer.__file__); "
              "print('node_transformer_tiny' in ARCH_MODEL_REGISTRY, 'node_translation' in TASK_REGISTRY)")
    proc = subprocess.run([sys.executable, "-c", script, str(site / "node_transformer")], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported_from, registered = proc.stdout.split()[0], proc.stdout.split()[1:]
    assert imported_from.startswith(str(site)) and registered == ["True", "True"]
