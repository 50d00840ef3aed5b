#!/bin/bash
# The guest's own settings, run inside its root file system at build time. Its packages
# came from debootstrap (ops/vm/build.sh), as Amazon Linux's come from
# ops/fleet/packages-al2023.sh: everything after that step is the fleet's files, as is.
set -euo pipefail
node_version=$1
echo nanogrid-vm >/etc/hostname
printf '127.0.0.1 localhost nanogrid-vm\n::1 localhost\n' >/etc/hosts
printf '/dev/vda / ext4 rw,noatime 0 1\n' >/etc/fstab
: >/etc/machine-id
# As on Amazon Linux 2023 (the nodejs24 package): the unit runs /usr/bin/node.
ln -sfn "/opt/nanogrid/node-$node_version/bin/node" /usr/bin/node
install -m 0755 /tmp/guest/nanogrid-vmjob /usr/local/sbin/nanogrid-vmjob
install -m 0644 /tmp/guest/nanogrid-vmjob.service /etc/systemd/system/nanogrid-vmjob.service
systemctl enable nanogrid-vmjob.service docker.service redis-server.service >/dev/null 2>&1
# Nothing in the guest needs timers, a login prompt or a network wait.
systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
  systemd-networkd-wait-online.service getty@tty1.service serial-getty@ttyS0.service >/dev/null 2>&1 || true
# The engine's defaults as the fleet's (no daemon.json); containerd's snapshotter on ext4.
rm -f /etc/docker/daemon.json
