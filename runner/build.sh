#!/usr/bin/env bash
# Builds the in-container runner into dist/runner/ (mounted read-only at /nanogrid in every
# function container): a static binary, so it runs in any image, even one with only /bin/sh,
# and the Python zygote beside it. Rebuilds only when a source changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${NANOGRID_RUNNER_OUT:-$here/../dist/runner}
mkdir -p "$out"
stale=0
for src in runner.c handler.c capture.c cleanup.c frames.c runner.h protocol.h; do [ "$here/$src" -nt "$out/runner" ] && stale=1; done
if [ ! -x "$out/runner" ] || [ "$stale" = 1 ]; then
  if ! command -v gcc >/dev/null 2>&1; then
    echo "runner/build.sh: gcc is missing (npm run setup installs it)" >&2
    exit 1
  fi
  gcc -static -O2 -Wall -Wextra -Werror -o "$out/runner.tmp" "$here/runner.c" "$here/handler.c" "$here/capture.c" "$here/cleanup.c" "$here/frames.c"
  mv "$out/runner.tmp" "$out/runner"
fi
# The compiler front (ccfront.c): the C++ runtime's PATH starts with bin/, where g++, c++,
# gcc and cc name it.
if [ ! -x "$out/ccfront" ] || [ "$here/ccfront.c" -nt "$out/ccfront" ]; then
  gcc -static -O2 -Wall -Wextra -Werror -o "$out/ccfront.tmp" "$here/ccfront.c"
  mv "$out/ccfront.tmp" "$out/ccfront"
fi
mkdir -p "$out/bin"
for cc in g++ c++ gcc cc; do ln -sfn ../ccfront "$out/bin/$cc"; done
install -m 0644 "$here/zygote.py" "$out/zygote.py"
# The handler mode's runtimes (handler.c is the runner's side).
install -m 0644 "$here/handler.py" "$out/handler.py"
install -m 0644 "$here/handler.js" "$out/handler.js"
chmod 0755 "$out" "$out/runner" "$out/ccfront" "$out/bin"
