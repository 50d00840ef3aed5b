#!/bin/bash
# Installs a release artifact (npm run package) and starts the agent under systemd, with no
# registry and no network: the fleet's user data runs it after its distribution's package
# steps (ops/fleet/packages-al2023.sh), and the VM suite runs it as is in a Debian guest.
#
#   install-artifact.sh TARBALL SHA256
#   install-artifact.sh --unpack-only TARBALL SHA256   verify and unpack only; prints the
#                             release folder (the artifact test, in a namespace with no network)
#
# The caller writes the agent's environment first (/etc/nanogrid/worker.env, HTTP_PORT
# included). Exit status, for the caller's signal to CloudFormation / Auto Scaling:
#   0 the agent answers ready      2 bad arguments          3 sha256 or layout mismatch
#   4 node is not the one the artifact was built for        5 not ready in time
#
#   NANOGRID_READY_TIMEOUT_S  how long to wait for /health/ready (default 600: the agent
#                             pulls its runtime images before it is ready)
#   NANOGRID_INSTALL_ROOT     with --unpack-only: where releases/ goes (default /opt/nanogrid,
#                             the unit's)
set -euo pipefail
unpack_only=0
if [ "${1:-}" = --unpack-only ]; then
  unpack_only=1
  shift
fi
ROOT=/opt/nanogrid
[ "$unpack_only" = 1 ] && ROOT=${NANOGRID_INSTALL_ROOT:-$ROOT}
ENV_FILE=/etc/nanogrid/worker.env
UNIT=nanogrid-worker
READY_TIMEOUT_S=${NANOGRID_READY_TIMEOUT_S:-600}
say() { printf '[install] %s\n' "$*" >&2; }
fail() {
  local code=$1
  shift
  say "$*"
  exit "$code"
}

[ $# -eq 2 ] || fail 2 "usage: install-artifact.sh TARBALL SHA256"
tarball=$1 want=$2
[[ "$want" =~ ^[0-9a-f]{64}$ ]] || fail 2 "the sha256 must be 64 lowercase hex digits, not '$want'"
[ -f "$tarball" ] || fail 2 "no file $tarball"
[ "$unpack_only" = 1 ] || [ -f "$ENV_FILE" ] || fail 2 "write $ENV_FILE first (the agent's environment)"

got=$(sha256sum "$tarball" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail 3 "$tarball has sha256 $got, not $want: not installed"

# One top folder, nanogrid-worker-<version>, and nothing outside it.
listing=$(tar -tzf "$tarball") || fail 3 "$tarball is not a gzip tarball"
top=${listing%%/*}
[[ "$top" =~ ^nanogrid-worker-[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$ ]] || fail 3 "unexpected top folder '$top'"
if grep -qvE "^$top(/|$)" <<<"$listing" || grep -qE '(^|/)\.\.(/|$)' <<<"$listing"; then
  fail 3 "$tarball has entries outside $top/"
fi
version=${top#nanogrid-worker-}
dest=$ROOT/releases/$version

if [ ! -f "$dest/manifest.json" ]; then
  say "unpacking $version into $dest"
  mkdir -p "$ROOT/releases"
  rm -rf "$dest" "$dest.partial"
  mkdir "$dest.partial"
  tar -xzf "$tarball" -C "$dest.partial" --strip-components=1 --no-same-owner
  mv "$dest.partial" "$dest"
fi

command -v node >/dev/null || fail 4 "no node on PATH (the distribution's package step installs it)"
node_check=$(node -e '
  const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const want = String(m.node).split(".")[0], have = process.versions.node.split(".")[0];
  if (want !== have || (m.nodeAbi && m.nodeAbi !== process.versions.modules))
    console.log(`the artifact runs on Node ${m.node} (ABI ${m.nodeAbi}), this node is ${process.versions.node} (ABI ${process.versions.modules})`);
' "$dest/manifest.json") || fail 4 "could not read $dest/manifest.json"
[ -z "$node_check" ] || fail 4 "$node_check"
if [ "$unpack_only" = 1 ]; then
  echo "$dest"
  exit 0
fi
# The unit runs /usr/bin/node: it must be the same node.
if [ "$(readlink -f "$(command -v node)")" != "$(readlink -f /usr/bin/node 2>/dev/null)" ]; then
  fail 4 "/usr/bin/node (the unit's) is not $(command -v node)"
fi

# The switch is one rename: the unit never sees a half-installed release.
if [ -d "$ROOT/worker" ] && [ ! -L "$ROOT/worker" ]; then rm -rf "$ROOT/worker"; fi
ln -sfn "$dest" "$ROOT/worker.next"
mv -Tf "$ROOT/worker.next" "$ROOT/worker"
install -m 0644 "$dest/ops/fleet/$UNIT.service" "/etc/systemd/system/$UNIT.service"
# The liveness watch (outside the agent): only where the group can be told (NANOGRID_ASG_NAME).
watch=0
if [ -f "$dest/ops/fleet/nanogrid-health-watch.timer" ] && grep -q '^NANOGRID_ASG_NAME=.' "$ENV_FILE" 2>/dev/null; then
  install -m 0644 "$dest/ops/fleet/nanogrid-health-watch.service" "$dest/ops/fleet/nanogrid-health-watch.timer" /etc/systemd/system/
  watch=1
fi

# Containers must never reach the instance metadata (credentials): IMDSv2 with a hop limit
# of 1 already stops them; this rule is a second wall. dockerd made the chain.
if command -v iptables >/dev/null && iptables -n -L DOCKER-USER >/dev/null 2>&1; then
  iptables -C DOCKER-USER -d 169.254.169.254/32 -j REJECT 2>/dev/null ||
    iptables -I DOCKER-USER -d 169.254.169.254/32 -j REJECT
else
  say "warning: no DOCKER-USER chain (is dockerd running?): metadata rule not added"
fi

systemctl daemon-reload
systemctl enable "$UNIT" >/dev/null 2>&1
[ "$watch" = 1 ] && systemctl enable --now nanogrid-health-watch.timer >/dev/null 2>&1
# restart, not start: an upgrade in place runs the new release.
systemctl restart "$UNIT"
port=$(sed -n 's/^HTTP_PORT=//p' "$ENV_FILE" | tail -1)
port=${port:-8080}
say "$version installed; waiting up to ${READY_TIMEOUT_S}s for http://127.0.0.1:$port/health/ready"
deadline=$((SECONDS + READY_TIMEOUT_S))
while [ $SECONDS -lt $deadline ]; do
  if node -e '
    const r = require("http").get({ host: "127.0.0.1", port: +process.argv[1], path: "/health/ready", timeout: 2000 },
      (res) => process.exit(res.statusCode === 200 ? 0 : 1));
    r.on("error", () => process.exit(1)); r.on("timeout", () => r.destroy());
  ' "$port"; then
    say "agent $version ready"
    exit 0
  fi
  sleep 2
done
say "agent $version not ready after ${READY_TIMEOUT_S}s; its last log lines:"
journalctl -u "$UNIT" -n 40 --no-pager >&2 || true
exit 5
