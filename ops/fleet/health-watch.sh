#!/usr/bin/env bash
# The fleet's liveness check from outside the agent (nanogrid-health-watch.timer runs it
# every 20 s): GET /health/live on the agent's port. After FAILURES_BEFORE_UNHEALTHY
# failures in a row (1 minute), the instance is marked Unhealthy in its Auto Scaling
# group, which replaces it. Liveness is the process and its engine only, never Redis or
# SQS: an outage of either does not replace the fleet. What systemd is doing counts too: a
# unit stopped on purpose (an operator, a drain at termination) is not a failure; one
# being restarted (Restart=) is not counted, nor forgiven; one systemd gave up on
# ("failed") is a failure. A run of the unit that has not answered yet has a grace
# (NANOGRID_HEALTH_GRACE_S, 10 minutes: its first image pulls) from the first check it
# failed, across restarts: an agent in a crash loop is replaced once the grace is over.
set -uo pipefail
ENV_FILE=${NANOGRID_ENV_FILE:-/etc/nanogrid/worker.env}
STATE=${NANOGRID_HEALTH_STATE:-/run/nanogrid/health-failures}
LIMIT=${FAILURES_BEFORE_UNHEALTHY:-3}
IMDS=${NANOGRID_IMDS_ENDPOINT:-http://169.254.169.254}
UNIT=nanogrid-worker
GRACE_S=${NANOGRID_HEALTH_GRACE_S:-600}
say() { echo "[health-watch] $*" >&2; }

state=$(systemctl is-active "$UNIT" 2>/dev/null)
case "$state" in
  inactive|deactivating)
    rm -f "$STATE" "$STATE.since"
    say "$UNIT is $state: stopped on purpose, not counted"
    exit 0
    ;;
  activating|reloading|refreshing)
    say "$UNIT is $state: not counted"
    exit 0
    ;;
esac
run_id=$(systemctl show -p InvocationID --value "$UNIT" 2>/dev/null)

port=$(sed -n 's/^HTTP_PORT=//p' "$ENV_FILE" 2>/dev/null | tail -1)
port=${port:-8080}
mkdir -p "$(dirname "$STATE")"
if node -e '
  const r = require("http").get({ host: "127.0.0.1", port: +process.argv[1], path: "/health/live", timeout: 5000 },
    (res) => process.exit(res.statusCode === 200 ? 0 : 1));
  r.on("error", () => process.exit(1)); r.on("timeout", () => r.destroy());
' "$port"; then
  rm -f "$STATE" "$STATE.since"
  # This run of the unit has answered: from now on a failure counts at once.
  [ -z "$run_id" ] || echo "$run_id" > "$STATE.live"
  exit 0
fi
if [ "$state" = active ] && [ "$(cat "$STATE.live" 2>/dev/null)" != "$run_id" ]; then
  now=$(date +%s)
  [ -s "$STATE.since" ] || echo "$now" > "$STATE.since"
  since=$(cat "$STATE.since")
  waited=$(( now - ${since:-$now} ))
  if [ "$waited" -lt "$GRACE_S" ]; then
    say "$UNIT has not answered since its start, ${waited} s ago: within its grace of ${GRACE_S} s"
    exit 0
  fi
fi
failures=$(( $(cat "$STATE" 2>/dev/null || echo 0) + 1 ))
echo "$failures" > "$STATE"
say "GET http://127.0.0.1:$port/health/live failed ($failures of $LIMIT in a row)"
[ "$failures" -ge "$LIMIT" ] || exit 0

token=$(curl -fsS -m 2 -X PUT "$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60') || { say "no IMDS token"; exit 1; }
instance=$(curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/instance-id") || { say "no instance id"; exit 1; }
region=$(curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/placement/region") || { say "no region"; exit 1; }
say "marking $instance Unhealthy: its Auto Scaling group replaces it"
aws autoscaling set-instance-health --region "$region" --instance-id "$instance" --health-status Unhealthy --no-should-respect-grace-period || { say "SetInstanceHealth failed"; exit 1; }
rm -f "$STATE"
