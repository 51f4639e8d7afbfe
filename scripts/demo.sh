#!/usr/bin/env bash
# The main job: creates .venv if needed, then runs the whole local service (API + worker +
# dashboard, embedded broker, SQLite, no Redis/Docker) and submits a demo job. Ctrl-C stops it.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
exec geokd up --demo "$@"
