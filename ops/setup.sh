#!/usr/bin/env bash
# Prepares a fresh Debian machine (as root) for the demo, the tests and the bench:
# Node 24 (ops/node.sh, where the machine's is older), npm packages built for it, docker.io
# with a running dockerd, redis-server, and the runtime images
# built locally (no registry is reachable). Idempotent: a second run only checks.
#
# Environment:
#   NANOGRID_SKIP_APT=1      do not apt-get install (the tools must already be there)
#   NANOGRID_IMAGE_PYTHON    image tag to build for python (default nanogrid/python:local)
#   NANOGRID_IMAGE_CPP       image tag to build for cpp    (default nanogrid/cpp:local)
#   NANOGRID_IMAGE_NODE      image tag to build for node   (default nanogrid/node:local)
#                            (the agent's own variables; NANOGRID_PYTHON_IMAGE and
#                            NANOGRID_CPP_IMAGE, the older names, still work)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PY_IMAGE=${NANOGRID_IMAGE_PYTHON:-${NANOGRID_PYTHON_IMAGE:-nanogrid/python:local}}
CPP_IMAGE=${NANOGRID_IMAGE_CPP:-${NANOGRID_CPP_IMAGE:-nanogrid/cpp:local}}
NODE_IMAGE=${NANOGRID_IMAGE_NODE:-nanogrid/node:local}
CACHE=${NANOGRID_CACHE_DIR:-/var/cache/nanogrid}
SUITE=bookworm
export DEBIAN_FRONTEND=noninteractive

say() { printf '[setup] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    say "must run as root to install docker.io/redis-server and start dockerd"
    exit 1
  fi
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  # The in-container runner is a static C binary (runner/build.sh).
  command -v gcc >/dev/null 2>&1 || missing+=(gcc)
  [ -f "$(gcc -print-file-name=libc.a 2>/dev/null)" ] || missing+=(libc6-dev)
  # The tests' image with nothing but /bin/sh is made of Debian's static busybox.
  [ -x /bin/busybox ] || missing+=(busybox-static)
  # Each container's writable space is an ext4 image (mkfs.ext4, mount, fallocate); the
  # tests also run it on an XFS work folder, as on a worker whose disk is XFS.
  command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
  command -v fallocate >/dev/null 2>&1 || missing+=(util-linux)
  command -v mkfs.xfs >/dev/null 2>&1 || missing+=(xfsprogs)
  # The optional gVisor tier (NANOGRID_OCI_RUNTIME=python=runsc) and crun, registered with
  # dockerd below.
  command -v runsc >/dev/null 2>&1 || missing+=(runsc)
  command -v crun >/dev/null 2>&1 || missing+=(crun)
  # The VM suite's guest (ops/vm): QEMU's software emulation runs Debian's own kernel.
  if [ "$WITH_VM" = 1 ]; then
    command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
  fi
  if [ ${#missing[@]} -eq 0 ]; then
    say "system packages present (dockerd, redis-server, debootstrap, gcc)"
    return
  fi
  if [ "${NANOGRID_SKIP_APT:-0}" = 1 ]; then
    say "missing ${missing[*]} and NANOGRID_SKIP_APT=1"
    exit 1
  fi
  need_root
  say "installing ${missing[*]} with apt-get (about 30 s)"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The project runs on the Node of ops/node-version (24 LTS, as Amazon Linux 2023 ships it):
# ops/node.sh fetches it from the npm registry where the machine's node is older and puts
# it first on PATH (/usr/local/bin/node), for npm and every script after this one.
install_node() {
  local bin
  bin=$(bash "$here/node.sh")
  NODE_BIN=$bin
  NODE_HOME=$(cd "$(dirname "$bin")/.." && pwd)
  export PATH="$(dirname "$bin"):$PATH"
  # node-gyp builds the optional native modules (ssh2's crypto, cpu-features) against
  # the headers the package ships, with no download.
  export npm_config_nodedir=$NODE_HOME
  say "node $("$bin" -v) ($bin)"
}

install_npm() {
  cd "$root"
  local abi stamp=node_modules/.nanogrid-node-abi
  abi=$(node -p 'process.versions.modules')
  # package-lock.json is the source of truth; reinstall when it changed since last install.
  if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    # Native modules are built for one Node ABI: a new Node rebuilds them in place.
    if [ "$(cat "$stamp" 2>/dev/null)" != "$abi" ]; then
      say "rebuilding native npm modules for Node ABI $abi"
      npm rebuild --no-audit --no-fund --loglevel=error
      echo "$abi" >"$stamp"
    fi
    say "npm packages present"
    return
  fi
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$abi" >"$stamp"
}

# A killed daemon can linger as a zombie for a while (its parent has not reaped it yet):
# kill -0 still succeeds on it, but it is gone.
alive() {
  kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != "Z" ]
}

# The OCI runtimes besides runc that dockerd offers the agent: gVisor's runsc (its Unix
# sockets reach the host, which the runner's control socket needs; gVisor's own network
# stack stays off: function containers have none, or the agent's egress network; the
# container's seccomp profile applies inside the sandbox too, --oci-seccomp) and crun.
DAEMON_JSON=/etc/docker/daemon.json
daemon_config() {
  cat <<'JSON'
{
  "runtimes": {
    "runsc": { "path": "/usr/bin/runsc", "runtimeArgs": ["--host-uds=all", "--network=none", "--oci-seccomp"] },
    "crun": { "path": "/usr/bin/crun" }
  }
}
JSON
}

# Writes dockerd's configuration when it differs; says whether it changed. A file with
# other settings of the operator's is left alone (with a note): merge the runtimes by hand.
configure_dockerd() {
  local want
  want=$(daemon_config)
  if [ -f "$DAEMON_JSON" ] && [ "$(cat "$DAEMON_JSON")" = "$want" ]; then return 1; fi
  if [ -f "$DAEMON_JSON" ] && ! grep -q '"runsc"' "$DAEMON_JSON"; then
    say "note: $DAEMON_JSON has settings of its own; add the runsc and crun runtimes to it for the gVisor tier"
    return 1
  fi
  mkdir -p "$(dirname "$DAEMON_JSON")"
  printf '%s\n' "$want" >"$DAEMON_JSON"
  return 0
}

start_dockerd() {
  if configure_dockerd && docker info >/dev/null 2>&1; then
    say "dockerd configuration changed (OCI runtimes): restarting dockerd"
    pkill -x dockerd || true
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 || break; sleep 0.5; done
  fi
  if docker info >/dev/null 2>&1; then
    say "dockerd running"
    return
  fi
  need_root
  # A dockerd killed with its session leaves its pid file behind, and the next one
  # refuses to start while it exists.
  local pidfile=/var/run/docker.pid
  if [ -f "$pidfile" ] && ! alive "$(cat "$pidfile")"; then
    say "removing stale $pidfile"
    rm -f "$pidfile"
  fi
  local cpid=/var/run/docker/containerd/containerd.pid
  if [ -f "$cpid" ] && ! alive "$(cat "$cpid")"; then
    rm -f "$cpid"
  fi
  if [ ! -f "$pidfile" ]; then
    say "starting dockerd (log: /var/log/nanogrid-dockerd.log)"
    setsid nohup dockerd >/var/log/nanogrid-dockerd.log 2>&1 </dev/null &
  fi
  for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
      say "dockerd ready"
      return
    fi
    sleep 0.5
  done
  say "dockerd did not answer within 60 s; last log lines:"
  tail -20 /var/log/nanogrid-dockerd.log >&2 || true
  exit 1
}

# Builds IMAGE from a debootstrap minbase root filesystem with the given packages.
build_image() {
  local image=$1 include=$2 fixup=$3
  # The recipe is recorded on the image: a changed recipe rebuilds it.
  local recipe
  recipe=$(printf '%s|%s|%s' "$SUITE" "$include" "$fixup" | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "nanogrid.recipe" }}' "$image" 2>/dev/null)" = "$recipe" ]; then
    say "image $image present"
    return
  fi
  need_root
  local dir
  dir=$(mktemp -d "/tmp/nanogrid-rootfs.XXXXXX")
  say "building $image: debootstrap --include=$include (about 30-90 s)"
  if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$dir" >"$dir.log" 2>&1; then
    say "debootstrap for $image failed; last lines:"
    tail -20 "$dir.log" >&2
    rm -rf "$dir" "$dir.log"
    return 1
  fi
  # Package caches and docs are dead weight in a runtime image.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
  if [ -n "$fixup" ]; then (cd "$dir" && eval "$fixup"); fi
  tar -C "$dir" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["sleep","infinity"]' \
    --change "LABEL nanogrid.recipe=$recipe" - "$image" >/dev/null
  rm -rf "$dir" "$dir.log"
  say "image $image built"
}

build_images() {
  # The debootstraps are network and disk bound: run them side by side.
  # python3 (not python3-minimal): the whole standard library, ctypes included (the
  # zygote needs it, and so do ordinary functions: json, urllib, sqlite3 ...). Jinja2, the
  # template engine published serverless benchmarks import (there is no PyPI here).
  build_image "$PY_IMAGE" python3,python3-jinja2 'ln -sf python3 usr/bin/python' &
  local p1=$!
  build_image "$CPP_IMAGE" g++ '' &
  local p2=$!
  # The node runtime: the project's own Node (ops/node-version, a supported LTS; Debian's
  # nodejs is 18, past its end of life) on a minbase root, which has the C++ library it needs.
  build_image "$NODE_IMAGE" libstdc++6 "install -D -m 0755 '$NODE_BIN' usr/local/bin/node" &
  local p3=$!
  local rc=0
  wait "$p1" || rc=1
  wait "$p2" || rc=1
  wait "$p3" || rc=1
  return $rc
}

# `setup.sh vm`: everything, and QEMU for the VM suite (npm run test:vm).
WITH_VM=0
if [ "${1:-}" = "vm" ]; then WITH_VM=1; fi

# `setup.sh dockerd`: only (re)start the engine (the chaos suite restarts a killed one).
if [ "${1:-}" = "dockerd" ]; then
  start_dockerd
  exit 0
fi

mkdir -p "$CACHE" 2>/dev/null || true
install_packages
install_node
install_npm
start_dockerd
build_images
say "ready"
