#!/usr/bin/env bash
# Builds the JavaScript validator into a WebAssembly component:
#   examples/plugins/js-validator/build.sh [OUTPUT]
# OUTPUT defaults to target/wasm-plugins/js_validator.wasm. componentize-js (pinned in
# package.json and package-lock.json) is installed with `npm ci` into node_modules here on
# first use. Does nothing when OUTPUT is newer than every source (guard.js, the package files,
# this script and the WIT files), so tests can call it every time.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=${1:-$target/wasm-plugins/js_validator.wasm}

mkdir -p "$(dirname "$out")" "$target/plugin-toolchains"
# Two test processes may build at once: one builds, the other waits and then finds it done.
exec 9>"$target/plugin-toolchains/js-validator.lock"
flock 9

sources=("$here/guard.js" "$here/package.json" "$here/package-lock.json" "$here/build.sh"
  "$root"/wit/0.1.0/*.wit)
if [[ -f $out ]]; then
  stale=0
  for source in "${sources[@]}"; do
    [[ $source -nt $out ]] && stale=1
  done
  if [[ $stale == 0 ]]; then
    echo "js-validator: $out is up to date" >&2
    exit 0
  fi
fi

# package.json pins componentize-js, and through `overrides` the jco it builds with: jco
# releases after 1.24 depend on packages with a native binary per platform (rolldown,
# componentize-qjs), and a registry that lacks one platform's makes `npm ci` refuse the lock.
# npm writes node_modules/.package-lock.json on every install: older than the lock file means
# the lock changed since.
if [[ ! -f $here/node_modules/.package-lock.json ||
  $here/package-lock.json -nt $here/node_modules/.package-lock.json ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

# `http` and `fetch-event` are off: they would import wasi:http, which the hangar does not
# link (a validator has no network). What stays (stdio, clocks, random) is WASI the hangar
# provides with an empty context; stdio is what puts an uncaught exception on stderr, which the
# hangar quotes when the call traps.
node "$here/node_modules/@bytecodealliance/componentize-js/src/cli.js" "$here/guard.js" \
  --wit "$root/wit/0.1.0" --world-name validator-plugin \
  --disable http fetch-event --out "$out.tmp"
mv "$out.tmp" "$out"
echo "js-validator: built $out ($(stat -c %s "$out") bytes)" >&2
