#!/usr/bin/env bash
# Installs into .venv if needed, then runs the test suite. Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "${1:-}" in -h|--help) echo "Usage: scripts/test.sh [PYTEST_ARGS...]"; exit 0 ;; esac
bash "$repo/scripts/install.sh"
cd "$repo"
exec "$repo/.venv/bin/python" -m pytest tests "$@"
