#!/usr/bin/env bash
# Installs into .venv if needed, then runs the test suite. Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "${1:-}" in -h|--help) echo "Usage: scripts/test.sh [PYTEST_ARGS...]  (one worker per core; -n 0 for one process)"; exit 0 ;; esac
bash "$repo/scripts/install.sh"
cd "$repo"
# One pytest worker per core, each test file in one worker (its module fixtures built once), each worker on
# one thread (tests/conftest.py): two workers each using every core would slow each other many times over.
exec "$repo/.venv/bin/python" -m pytest tests -n auto --dist loadfile "$@"
