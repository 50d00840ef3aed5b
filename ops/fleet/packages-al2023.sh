#!/bin/bash
# The distribution's part of the fleet's install, Amazon Linux 2023: what the release
# artifact does not carry (dockerd, the Node it was built for, the file system and firewall
# tools the agent drives, the AWS CLI and cfn-signal the user data reports with). Nothing
# to compile: the artifact's runner and native modules are prebuilt. Another distribution
# gets a file like this one; user-data.sh and install-artifact.sh stay as they are.
set -euo pipefail
dnf install -y -q docker nodejs24 e2fsprogs xfsprogs util-linux iptables-nft awscli-2 aws-cfn-bootstrap tar gzip
# AL2023 names each Node by its major; the unit runs /usr/bin/node. Were it missing,
# install-artifact.sh refuses the install (status 4) rather than start another Node.
if [ -x /usr/bin/node-24 ]; then ln -sf /usr/bin/node-24 /usr/bin/node; fi
systemctl enable --now docker
