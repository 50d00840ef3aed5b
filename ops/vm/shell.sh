#!/usr/bin/env bash
# A root shell in the VM suite's guest, for debugging: the guest as the suite boots it
# (built or checked first), its console on this terminal, the project read-only at
# /project and a scratch folder at /job (kept; its path is printed). `poweroff -f` or
# Ctrl-A X ends it; writes to the guest's disk are thrown away.
#
#   ops/vm/shell.sh [TIMEOUT_S]     (default 3600)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
guest=$(bash "$here/build.sh")
job=$(mktemp -d /tmp/nanogrid-vmshell.XXXXXX)
cat >"$job/run.sh" <<'JOB'
echo "[vm-shell] root shell in the guest; poweroff -f to leave"
setsid -c bash -l </dev/ttyS0 >/dev/ttyS0 2>&1
JOB
echo "[vm-shell] job folder $job" >&2
NANOGRID_VM_CONSOLE=1 NANOGRID_VM_PROJECT=$(cd "$here/../.." && pwd) exec bash "$here/boot.sh" "$guest" "$job" "${1:-3600}"
