#!/bin/bash
# User data of the NanoGrid worker launch template (Amazon Linux 2023). The CDK stack
# fills in the placeholders (two @ signs around a name). It installs Docker and Node.js, fetches the agent package
# from the code bucket, writes the agent's environment, installs the systemd unit and
# starts the agent, which pulls the runtime images before it reports ready.
set -euo pipefail
exec > >(tee -a /var/log/nanogrid-user-data.log) 2>&1
echo "[user-data] $(date -Is) start"

dnf install -y -q docker nodejs20 nodejs20-npm gcc make tar gzip e2fsprogs xfsprogs util-linux iptables-nft awscli-2
ln -sf /usr/bin/node-20 /usr/bin/node 2>/dev/null || true
ln -sf /usr/bin/npm-20 /usr/bin/npm 2>/dev/null || true
systemctl enable --now docker

# Containers must never reach the instance metadata (credentials): IMDSv2 with a hop
# limit of 1 already stops them; this rule is a second wall.
iptables -I DOCKER-USER -d 169.254.169.254/32 -j REJECT || true

install -d -m 0755 /opt/nanogrid/worker /etc/nanogrid
aws s3 cp --only-show-errors "s3://@@CODE_BUCKET@@/@@AGENT_PACKAGE_KEY@@" /opt/nanogrid/worker.tgz
tar -xzf /opt/nanogrid/worker.tgz -C /opt/nanogrid/worker --strip-components=1
(cd /opt/nanogrid/worker && npm ci --omit=dev --no-audit --no-fund && bash runner/build.sh)

cat > /etc/nanogrid/worker.env <<ENV
SQS_QUEUE_URL=@@QUEUE_URL@@
REDIS_URL=@@REDIS_URL@@
S3_CODE_BUCKET=@@CODE_BUCKET@@
S3_USER_DATA_BUCKET=@@USER_DATA_BUCKET@@
NANOGRID_IMAGE_PYTHON=@@IMAGE_PYTHON@@
NANOGRID_IMAGE_CPP=@@IMAGE_CPP@@
NANOGRID_IMAGE_PULL=missing
NANOGRID_MAX_TIMEOUT_MS=@@MAX_RUN_MS@@
NANOGRID_TERMINATION_WATCH=imds
NANOGRID_LIFECYCLE_HOOK=@@LIFECYCLE_HOOK@@
NANOGRID_ASG_NAME=@@ASG_NAME@@
NANOGRID_CLOUDWATCH_NAMESPACE=@@METRICS_NAMESPACE@@
NANOGRID_WORK_ROOT=/var/lib/nanogrid
HTTP_PORT=@@HTTP_PORT@@
AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
ENV
chmod 0600 /etc/nanogrid/worker.env

cat > /etc/systemd/system/nanogrid-worker.service <<'UNIT'
@@UNIT@@
UNIT
systemctl daemon-reload
systemctl enable --now nanogrid-worker
echo "[user-data] $(date -Is) agent started"
