#!/usr/bin/env bash
# `npm run package`: the release artifact, one self-contained tarball that installs and
# starts with no registry and no network (ops/fleet/install-artifact.sh):
#
#   nanogrid-worker-<version>/
#     manifest.json        name, version, commit, the Node it runs on (version and ABI)
#     package.json, package-lock.json
#     dist/src, dist/workers   the compiled agent
#     dist/runner          the static runner and the Python zygote (no compiler at boot)
#     node_modules/        production dependencies, native ones built for that Node
#     ops/fleet/           the systemd unit and the install script
#
# Prints the tarball's path and sha256 (also written beside it as <tarball>.sha256): the
# stack takes both (ArtifactVersion, ArtifactSha256).
#
#   NANOGRID_VERSION   the version (default: package.json's, then the commit: 0.1.0-1a2b3c4,
#                      with .dirty when the work tree has changes)
#   NANOGRID_RELEASE_DIR  where the tarball goes (default release/ in the repository)
#   NANOGRID_PACKAGE_BUILT=1  package dist/ as it is (the tests: they run after npm run
#                      build, and a rebuild would rewrite files other tests are loading)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
say() { printf '[package] %s\n' "$*" >&2; }

read -r node_version _ <"$here/node-version"
if [ "$(node -p 'process.versions.node')" != "$node_version" ]; then
  say "node is $(node -v), the artifact names $node_version: run ops/setup.sh (it provides it)"
  exit 1
fi
# node-gyp builds against the headers the pinned Node ships, with no download.
export npm_config_nodedir=${npm_config_nodedir:-$(dirname "$(dirname "$(node -p process.execPath)")")}
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
version=${NANOGRID_VERSION:-}
if [ -z "$version" ]; then
  version="$(node -p 'require("./package.json").version')-${commit:0:7}"
  if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then version="$version.dirty"; fi
fi
if ! [[ "$version" =~ ^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$ ]]; then
  say "version '$version' is not a plain version string"
  exit 1
fi
out=${NANOGRID_RELEASE_DIR:-$root/release}
name=nanogrid-worker-$version
mkdir -p "$out"
tmp=$(mktemp -d /tmp/nanogrid-package.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/$name

if [ "${NANOGRID_PACKAGE_BUILT:-0}" = 1 ]; then
  [ -f dist/src/main.js ] && [ -x dist/runner/runner ] || { say "no build in dist/ (npm run build)"; exit 1; }
else
  say "building $name"
  npm run --silent build >&2
fi
mkdir -p "$stage/dist" "$stage/ops/fleet"
cp -r dist/src dist/workers dist/runner "$stage/dist/"
find "$stage/dist" -name '*.map' -delete
cp package.json package-lock.json "$stage/"
cp ops/fleet/nanogrid-worker.service ops/fleet/install-artifact.sh ops/fleet/health-watch.sh ops/fleet/nanogrid-health-watch.service ops/fleet/nanogrid-health-watch.timer "$stage/ops/fleet/"
# The docs travel with the build: the unit's Documentation= names docs/fleet.md on the instance.
mkdir -p "$stage/docs" && cp docs/*.md "$stage/docs/"

say "installing production dependencies (from npm's cache when it has them)"
# The lockfile decides; optional native modules are built against the pinned Node's
# headers (setup.sh sets npm_config_nodedir), or are absent.
(cd "$stage" && npm ci --omit=dev --prefer-offline --no-audit --no-fund --loglevel=error >&2)
# typescript is only an optional peer of valibot (fauxqs's), kept because it is also our
# dev dependency (devOptional in the lockfile): nothing at run time loads it.
rm -rf "$stage/node_modules/typescript" "$stage/node_modules/.bin/tsc" "$stage/node_modules/.bin/tsserver"

node -e '
  const [file, name, version, commit, nodeVersion] = process.argv.slice(1);
  const m = { name, version, commit, node: nodeVersion, nodeAbi: process.versions.modules,
    platform: `${process.platform}-${process.arch}`, builtAt: new Date().toISOString() };
  require("fs").writeFileSync(file, JSON.stringify(m, null, 2) + "\n");
' "$stage/manifest.json" nanogrid-worker "$version" "$commit" "$node_version"

# Stable order and owners: the same tree gives the same listing.
tar -C "$tmp" --sort=name --owner=0 --group=0 --numeric-owner -czf "$tmp/$name.tgz" "$name"
mv "$tmp/$name.tgz" "$out/$name.tgz"
sum=$(sha256sum "$out/$name.tgz" | cut -d' ' -f1)
echo "$sum  $name.tgz" >"$out/$name.tgz.sha256"
say "$(du -h "$out/$name.tgz" | cut -f1) $out/$name.tgz"
echo "$out/$name.tgz"
echo "sha256 $sum"
echo "version $version"
