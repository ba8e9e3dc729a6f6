#!/usr/bin/env bash
# Create a venv for each reference peer from its pinned requirements.lock.txt:
#   bench/peers/setup.sh [DEST]     DEST defaults to bench/.work/peers
# Afterwards DEST/<peer>/.venv/bin/uvicorn serves bench/peers/<peer>/app.py.
# A venv is rebuilt when its lock file changes. Installs wrk from Debian's packages if it
# is missing (needs root).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEST=${1:-$(dirname "$HERE")/.work/peers}
PY=${PYTHON:-python3}
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk
  else echo "wrk missing: apt-get install -y wrk" >&2; exit 1; fi
fi
for peer in seed_tutorial fastapi_users ceiling; do
  lock="$HERE/$peer/requirements.lock.txt"
  venv="$DEST/$peer/.venv"
  if [ ! -x "$venv/bin/uvicorn" ] || ! cmp -s "$lock" "$venv/installed.lock.txt"; then
    rm -rf "$venv"
    mkdir -p "$DEST/$peer"
    "$PY" -m venv "$venv"
    "$venv/bin/pip" install -q --no-deps -r "$lock"
    cp "$lock" "$venv/installed.lock.txt"
  fi
  echo "$peer ready: $venv"
done
