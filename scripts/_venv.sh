# Sourced by the scripts: make sure .venv exists and holds the project with every extra.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
STAMP="$VENV/.geokd-installed"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[geokd] creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip wheel
fi
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[geokd] installing geokd[all] into $VENV (torch==2.13.0 CPU; first time takes a few minutes)"
  "$VENV/bin/pip" install -q -e "$ROOT[all]"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
