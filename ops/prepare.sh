#!/usr/bin/env bash
# What `npm run local` and `npm run nanogrid` need before they start: ops/setup.sh (the
# machine's packages, Node, npm packages, dockerd, the images) and the build, one at a
# time: a second npm run waits for the first one's instead of reinstalling under it.
set -euo pipefail
cd "$(dirname "$0")/.."
exec 9>.nanogrid-prepare.lock
if ! flock -n 9; then
  echo "[prepare] waiting for the setup and build another npm run is doing" >&2
  flock 9
fi
# 9>&-: only this script holds the lock. A child keeping fd 9 (setup.sh's dockerd, which
# runs on) would hold it for as long as it lives, and every later npm run would wait.
bash ops/setup.sh "$@" 9>&-
npm run -s build 9>&-
