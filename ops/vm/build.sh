#!/usr/bin/env bash
# Builds the VM suite's guest: a host like the fleet's (cgroup v2, kernel 6.1, systemd,
# Docker, Redis, Node 24) from Debian bookworm's packages and the npm registry, cached by
# its recipe like the runtime images (a changed recipe rebuilds it; an unchanged one is
# only checked). Prints the folder holding disk.img, vmlinuz and initrd.img.
#
# The runtime images are the host's own (docker save), loaded into the guest's engine in
# one provisioning boot, not rebuilt under emulation.
#
#   NANOGRID_VM_CACHE  where guests are kept (default /var/cache/nanogrid/vm; never the work tree)
#   NANOGRID_VM_IMAGES the host images to load (default nanogrid/python:local)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHE=${NANOGRID_VM_CACHE:-/var/cache/nanogrid/vm}
IMAGES=${NANOGRID_VM_IMAGES:-nanogrid/python:local}
SUITE=bookworm
# The guest's distribution step: Debian's packages for what ops/fleet/packages-al2023.sh
# installs on Amazon Linux (kernel, systemd, engine, Redis, the tools the agent calls), and
# crun for the anatomy of a cold start beside runc (test/vm/guest/crun.vm.ts; the fleet keeps runc),
# with D-Bus as on Amazon Linux (crun reaches systemd through it for the systemd cgroup driver).
PACKAGES=linux-image-amd64,initramfs-tools,systemd-sysv,udev,kmod,docker.io,crun,dbus,redis-server,iproute2,iptables,procps,e2fsprogs,xfsprogs,util-linux,psmisc,curl
DISK_SIZE=6G
say() { printf '[vm-build] %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || { say "must run as root (debootstrap, mkfs)"; exit 1; }
for tool in debootstrap qemu-system-x86_64 mkfs.ext4 docker; do
  command -v "$tool" >/dev/null || { say "$tool is missing: run ops/setup.sh vm"; exit 1; }
done
read -r node_version _ <"$root/ops/node-version"
node_home=/opt/nanogrid/node-$node_version
[ -x "$node_home/bin/node" ] || node_home=$(dirname "$(dirname "$(NANOGRID_NODE_LINK=none bash "$root/ops/node.sh")")")

image_ids=""
for image in $IMAGES; do
  id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) || { say "no image $image (ops/setup.sh builds it)"; exit 1; }
  image_ids="$image_ids $image=$id"
done
recipe=$( (
  echo "$SUITE $PACKAGES $DISK_SIZE $node_version$image_ids"
  cat "$here/build.sh" "$here/guest/"*
) | sha256sum | cut -c1-16)
out=$CACHE/$recipe
if [ -f "$out/ready" ]; then
  say "guest $recipe present ($out)"
  echo "$out"
  exit 0
fi

started=$SECONDS
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
say "building guest $recipe: debootstrap $SUITE with $PACKAGES (a few minutes; log $work/debootstrap.log)"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" >"$work/debootstrap.log" 2>&1; then
  say "debootstrap failed; last lines:"
  tail -20 "$work/debootstrap.log" >&2
  exit 1
fi
say "packages installed ($((SECONDS - started)) s)"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

mkdir -p "$rootfs/opt/nanogrid" "$rootfs/tmp/guest" "$rootfs/var/lib/nanogrid-vm"
cp -a "$node_home" "$rootfs/opt/nanogrid/"
cp "$here/guest/"* "$rootfs/tmp/guest/"
chroot "$rootfs" /bin/bash /tmp/guest/setup-guest.sh "$node_version"
rm -rf "$rootfs/tmp/guest"

kernel=$(ls "$rootfs"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$rootfs"/boot/initrd.img-* | sort -V | tail -1)
[ -f "$kernel" ] && [ -f "$initrd" ] || { say "no kernel or initramfs in the guest's /boot"; exit 1; }
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
basename "$kernel" | sed 's/^vmlinuz-//' >"$work/kernel-version"

say "saving the runtime images ($IMAGES)"
# shellcheck disable=SC2086
docker save -o "$rootfs/var/lib/nanogrid-vm/images.tar" $IMAGES

say "making the disk ($DISK_SIZE, sparse)"
mkfs.ext4 -q -F -L nanogrid-vm -d "$rootfs" "$work/disk.img" "$DISK_SIZE"
rm -rf "$rootfs"

say "provisioning boot: loading the images into the guest's engine"
job=$work/job
mkdir -p "$job"
cat >"$job/run.sh" <<'JOB'
set -euo pipefail
docker load -i /var/lib/nanogrid-vm/images.tar
rm -f /var/lib/nanogrid-vm/images.tar
docker images
# Nothing of this boot should be taken for a later one's.
journalctl --rotate >/dev/null 2>&1 && journalctl --vacuum-time=1s >/dev/null 2>&1 || true
JOB
if ! NANOGRID_VM_WRITABLE=1 bash "$here/boot.sh" "$work" "$job" 900; then
  say "provisioning boot failed; its output:"
  tail -30 "$job/out.log" "$job/serial.log" >&2 2>/dev/null || true
  exit 1
fi
cat "$job/out.log" >&2
rm -rf "$job"
touch "$work/ready"
# Older recipes' guests are dead weight.
for old in "$CACHE"/*/; do
  old=${old%/}
  [ "$old" != "$work" ] && [ -f "$old/ready" ] && rm -rf "$old"
done
mv "$work" "$out"
trap - EXIT
say "guest $recipe built in $((SECONDS - started)) s ($(du -sh "$out" | cut -f1) on disk)"
echo "$out"
