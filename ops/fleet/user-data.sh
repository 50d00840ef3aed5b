#!/bin/bash
# User data of the NanoGrid worker launch template. The CDK stack (infra/userData.ts) fills
# in the placeholders (two @ signs around a name) and inlines two files as they are: the
# distribution's package step (packages-al2023.sh) and the artifact's installer
# (install-artifact.sh). The rest is distribution-neutral: fetch the release artifact
# named by the stack's ArtifactVersion, write the agent's environment, let
# install-artifact.sh check its sha256 (ArtifactSha256), install it and wait until the
# agent is ready. No package registry at boot: no npm, no compiler.
#
# The result is reported on every exit, an error under set -e included: the launch
# lifecycle action is completed (CONTINUE, or ABANDON: the group terminates the instance,
# and an instance refresh counts a failed launch) and CloudFormation is signalled (which
# it takes while it creates the group). Saying nothing is failing too: the hook's default
# result is ABANDON and the creation policy times out.
#
# Exit status: install-artifact.sh's (3 sha256 or layout, 4 node, 5 not ready), 6 the
# artifact could not be fetched, anything else a failed step.
set -euo pipefail
exec > >(tee -a /var/log/nanogrid-user-data.log) 2>&1
release=@@ARTIFACT_VERSION@@
echo "[user-data] $(date -Is) start: nanogrid-worker $release"

imds() {
  local token
  token=$(curl -sf -m 5 -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300') &&
    curl -sf -m 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
report() {
  local rc=$1 result=CONTINUE instance
  trap - EXIT
  set +e
  [ "$rc" = 0 ] || result=ABANDON
  echo "[user-data] $(date -Is) install of $release ended with status $rc: $result"
  # A failed install is counted where an alarm watches it (the stack's FailedInstalls).
  [ "$rc" = 0 ] || aws cloudwatch put-metric-data --region @@REGION@@ --namespace @@METRICS_NAMESPACE@@ \
    --metric-name FailedInstalls --unit Count --value 1 --dimensions AutoScalingGroupName=@@ASG_NAME@@ ||
    echo "[user-data] the failed install was not counted in CloudWatch"
  instance=$(imds instance-id)
  aws autoscaling complete-lifecycle-action --region @@REGION@@ --auto-scaling-group-name @@ASG_NAME@@ \
    --lifecycle-hook-name @@LAUNCH_HOOK@@ --instance-id "$instance" --lifecycle-action-result "$result" ||
    echo "[user-data] the launch lifecycle action was not completed: its timeout applies (ABANDON)"
  /opt/aws/bin/cfn-signal -e "$rc" --reason "nanogrid-worker $release: install status $rc" \
    --stack @@STACK_NAME@@ --resource @@GROUP_RESOURCE@@ --region @@REGION@@ ||
    echo "[user-data] CloudFormation took no signal (it waits on the group only while creating it)"
  exit "$rc"
}
trap 'report $?' EXIT

install -d -m 0755 /opt/nanogrid /etc/nanogrid
cat > /opt/nanogrid/packages.sh <<'NANOGRID_PACKAGES_EOF'
@@PACKAGES@@
NANOGRID_PACKAGES_EOF
cat > /opt/nanogrid/install-artifact.sh <<'NANOGRID_INSTALL_EOF'
@@INSTALL@@
NANOGRID_INSTALL_EOF
chmod 0755 /opt/nanogrid/packages.sh /opt/nanogrid/install-artifact.sh
/opt/nanogrid/packages.sh

tarball=/opt/nanogrid/nanogrid-worker-$release.tgz
key=@@ARTIFACT_KEY@@
for attempt in 1 2 3 4 5; do
  if aws s3 cp --only-show-errors --region @@REGION@@ "s3://@@CODE_BUCKET@@/$key" "$tarball"; then break; fi
  if [ "$attempt" = 5 ]; then
    echo "[user-data] could not fetch s3://@@CODE_BUCKET@@/$key"
    exit 6
  fi
  sleep $((attempt * 5))
done

# Each worker's log streams are named by its instance id (what Session Manager takes):
# host names come back on replaced instances.
instance_id=$(imds instance-id || hostname)
cat > /etc/nanogrid/worker.env <<ENV
SQS_QUEUE_URL=@@QUEUE_URL@@
REDIS_URL=@@REDIS_URL@@
S3_CODE_BUCKET=@@CODE_BUCKET@@
S3_USER_DATA_BUCKET=@@USER_DATA_BUCKET@@
NANOGRID_IMAGE_PYTHON=@@IMAGE_PYTHON@@
NANOGRID_IMAGE_CPP=@@IMAGE_CPP@@
NANOGRID_IMAGE_NODE=@@IMAGE_NODE@@
NANOGRID_RUNTIMES=@@RUNTIMES@@
NANOGRID_IMAGE_PULL=missing
NANOGRID_MAX_TIMEOUT_MS=@@MAX_RUN_MS@@
NANOGRID_TERMINATION_WATCH=imds
NANOGRID_LIFECYCLE_HOOK=@@LIFECYCLE_HOOK@@
NANOGRID_ASG_NAME=@@ASG_NAME@@
NANOGRID_CLOUDWATCH_NAMESPACE=@@METRICS_NAMESPACE@@
NANOGRID_LOG_GROUP=@@AGENT_LOG_GROUP@@
NANOGRID_FUNCTION_LOG_GROUP=@@FUNCTION_LOG_GROUP@@
NANOGRID_LOG_STREAM=$instance_id
NANOGRID_WORK_ROOT=/var/lib/nanogrid
HTTP_PORT=@@HTTP_PORT@@
AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
ENV
chmod 0600 /etc/nanogrid/worker.env

# The unit comes with the artifact; its stop timeout follows this stack's longest run.
install -d -m 0755 /etc/systemd/system/nanogrid-worker.service.d
cat > /etc/systemd/system/nanogrid-worker.service.d/stop-timeout.conf <<'UNIT'
# The longest allowed run plus the agent's slack and a margin (the stack's maxRunS).
[Service]
TimeoutStopSec=@@STOP_TIMEOUT_S@@
UNIT

/opt/nanogrid/install-artifact.sh "$tarball" @@ARTIFACT_SHA256@@
echo "[user-data] $(date -Is) nanogrid-worker $release ready"
