#!/bin/bash
# The distribution's part of the fleet's install in the VM suite's Debian guest, in place of
# ops/fleet/packages-al2023.sh: the packages came with the guest's image (ops/vm/build.sh's
# debootstrap list, and Node 24 from the npm registry at /usr/bin/node), so this only checks
# them and starts dockerd, as the Amazon Linux step does.
set -euo pipefail
for tool in dockerd iptables mkfs.ext4 tar gzip node; do
  command -v "$tool" >/dev/null || { echo "[packages] $tool is missing from the guest image" >&2; exit 1; }
done
systemctl enable --now docker
