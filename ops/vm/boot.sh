#!/usr/bin/env bash
# Boots the guest (ops/vm/build.sh) once to run a job: JOB_DIR/run.sh runs in the guest as
# root when its engine and Redis are up (guest/nanogrid-vmjob), with JOB_DIR shared at /job
# and, when NANOGRID_VM_PROJECT is set, that folder read-only at /project. The guest powers
# off when the job ends; this script exits with the job's status.
#
#   boot.sh GUEST_DIR JOB_DIR TIMEOUT_S
#
# The guest has no network device at all (-nic none): nothing outside it is reachable.
# AppArmor is off, as on Amazon Linux (SELinux, permissive); Debian's kernel enables it.
# Writes go to a throwaway overlay (-snapshot) unless NANOGRID_VM_WRITABLE=1 (provisioning).
# KVM is used only when a short probe shows it boots here; otherwise software emulation.
#
#   NANOGRID_VM_ACCEL   auto (default), kvm or tcg
#   NANOGRID_VM_MEM_MB  guest memory (default 4096); NANOGRID_VM_CPUS (default: host's, at most 4)
#   NANOGRID_VM_APPEND  more kernel arguments (systemd.unified_cgroup_hierarchy=0: the same
#                       guest on cgroup v1, for a like-for-like comparison)
#   NANOGRID_VM_CONSOLE=1  the guest's console on this terminal instead of JOB_DIR/serial.log
#                          (ops/vm/shell.sh)
# Exit status: the job's, or 124 when the guest did not finish in time, 125 when QEMU failed.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: boot.sh GUEST_DIR JOB_DIR TIMEOUT_S" >&2; exit 2; }
guest=$1 job=$2 timeout_s=$3
say() { printf '[vm] %s\n' "$*" >&2; }
for f in disk.img vmlinuz initrd.img; do
  [ -f "$guest/$f" ] || { say "no $guest/$f (ops/vm/build.sh makes it)"; exit 2; }
done
[ -f "$job/run.sh" ] || { say "no $job/run.sh"; exit 2; }
rm -f "$job/rc" "$job/out.log" "$job/serial.log"

# Hangs rather than fails where nested KVM is broken: give it a few seconds to reach the
# kernel's own panic (no root given), and remember the answer for this host kernel.
kvm_works() {
  [ -w /dev/kvm ] || return 1
  local cache probe
  cache=$(dirname "$guest")/kvm-probe.$(uname -r)
  if [ -f "$cache" ]; then [ "$(cat "$cache")" = yes ]; return; fi
  probe=$(mktemp)
  if (timeout -k 2 12 qemu-system-x86_64 -accel kvm -cpu host -m 256 -nodefaults -no-user-config \
    -display none -no-reboot -serial "file:$probe" -kernel "$guest/vmlinuz" \
    -append 'console=ttyS0 panic=-1 loglevel=4') >/dev/null 2>&1 && grep -q 'Kernel panic' "$probe"; then
    echo yes >"$cache"
  else
    echo no >"$cache"
  fi
  rm -f "$probe"
  [ "$(cat "$cache")" = yes ]
}

accel=${NANOGRID_VM_ACCEL:-auto}
if [ "$accel" = auto ]; then
  if kvm_works; then accel=kvm; else accel=tcg; fi
fi
if [ "$accel" = kvm ]; then
  machine=(-accel kvm -cpu host)
else
  # -cpu host needs KVM; max is every feature TCG emulates.
  machine=(-accel tcg,thread=multi -cpu max)
fi
cpus=${NANOGRID_VM_CPUS:-$(($(nproc) > 4 ? 4 : $(nproc)))}
mem=${NANOGRID_VM_MEM_MB:-4096}
drive="file=$guest/disk.img,format=raw,if=virtio,cache=unsafe"
[ "${NANOGRID_VM_WRITABLE:-0}" = 1 ] || drive="$drive,snapshot=on"
shares=(-virtfs "local,path=$job,mount_tag=job,security_model=none,id=job")
if [ -n "${NANOGRID_VM_PROJECT:-}" ]; then
  shares+=(-virtfs "local,path=$NANOGRID_VM_PROJECT,mount_tag=project,security_model=none,readonly=on,id=project")
fi

serial=(-serial "file:$job/serial.log")
stdin=/dev/null
if [ "${NANOGRID_VM_CONSOLE:-0}" = 1 ]; then
  serial=(-serial mon:stdio)
  stdin=/dev/stdin
fi

pidfile=$(mktemp -u /tmp/nanogrid-vm.XXXXXX.pid)
cleanup() {
  if [ -f "$pidfile" ]; then
    kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

say "booting ($accel, $cpus cpus, ${mem} MiB, at most ${timeout_s} s)"
started=$SECONDS
qrc=0
timeout -k 5 "$timeout_s" qemu-system-x86_64 "${machine[@]}" -smp "$cpus" -m "$mem" \
  -nodefaults -no-user-config -display none -no-reboot -nic none \
  -pidfile "$pidfile" \
  "${serial[@]}" \
  -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 panic=-1 quiet loglevel=3 apparmor=0 systemd.unified_cgroup_hierarchy=1 systemd.show_status=auto ${NANOGRID_VM_APPEND:-}" \
  -drive "$drive" \
  -device virtio-rng-pci \
  "${shares[@]}" <"$stdin" || qrc=$?
elapsed=$((SECONDS - started))
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  say "the guest did not finish within ${timeout_s} s; console tail:"
  tail -20 "$job/serial.log" >&2 || true
  exit 124
fi
if [ ! -f "$job/rc" ]; then
  say "QEMU exited ($qrc) after ${elapsed} s with no job status; console tail:"
  tail -20 "$job/serial.log" >&2 || true
  exit 125
fi
rc=$(cat "$job/rc")
say "guest done in ${elapsed} s, job status $rc"
exit "$rc"
