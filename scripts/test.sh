#!/usr/bin/env bash
# The test command (README and CI): creates .venv if needed, then lint + the whole test suite.
# Needs Redis at 127.0.0.1:6379 (tests/service) and /usr/bin/chromium (browser test; skipped if absent).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
echo "[geokd] ruff"
ruff check .
echo "[geokd] pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "[geokd] pytest collected no tests"; fi
exit "$rc"
