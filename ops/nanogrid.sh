#!/usr/bin/env bash
# `npm run -s nanogrid -- <command>`: the operator CLI from this checkout. On a fresh clone it
# waits for the setup and build an `npm run local` is doing (or does them, with nothing
# built), so the README's three commands can follow each other at once. Paths are the
# caller's (npm runs scripts from the package's folder; INIT_CWD is where it was called).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
lock="$here/.nanogrid-prepare.lock"
if ! flock -n "$lock" true 2>/dev/null; then
  echo "[nanogrid] waiting for the setup and build an npm run is doing (on a fresh machine: a few minutes)" >&2
  flock "$lock" true
fi
[ -f "$here/dist/src/cli/nanogrid.js" ] || bash "$here/ops/prepare.sh" >&2
cd "${INIT_CWD:-$PWD}"
exec node "$here/dist/src/cli/nanogrid.js" "$@"
