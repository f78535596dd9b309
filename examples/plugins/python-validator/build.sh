#!/usr/bin/env bash
# Builds the Python validator into a WebAssembly component:
#   examples/plugins/python-validator/build.sh [OUTPUT]
# OUTPUT defaults to target/wasm-plugins/python_validator.wasm. componentize-py (pinned in
# requirements.txt) is installed into a venv under target/plugin-toolchains/py on first use.
# Does nothing when OUTPUT is newer than every source (guard.py, requirements.txt, this script
# and the WIT files), so tests can call it every time.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=${1:-$target/wasm-plugins/python_validator.wasm}
venv=$target/plugin-toolchains/py
python=${PYTHON:-python3}

mkdir -p "$(dirname "$out")" "$target/plugin-toolchains"
# Two test processes may build at once: one builds, the other waits and then finds it done.
exec 9>"$target/plugin-toolchains/python-validator.lock"
flock 9

sources=("$here/guard.py" "$here/requirements.txt" "$here/build.sh" "$root"/wit/0.1.0/*.wit)
if [[ -f $out ]]; then
  stale=0
  for source in "${sources[@]}"; do
    [[ $source -nt $out ]] && stale=1
  done
  if [[ $stale == 0 ]]; then
    echo "python-validator: $out is up to date" >&2
    exit 0
  fi
fi

# The venv is (re)made when requirements.txt changed since it was installed.
marker=$venv/.installed
if ! cmp -s "$here/requirements.txt" "$marker"; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$marker"
fi

# componentize-py runs the module once at build time (pre-initialization) and snapshots the
# interpreter, so import errors surface here rather than in the hangar.
"$venv/bin/componentize-py" --wit-path "$root/wit/0.1.0" --world validator-plugin \
  componentize --python-path "$here" guard --output "$out.tmp" >&2
echo >&2 # componentize-py ends its last line without a newline
mv "$out.tmp" "$out"
echo "python-validator: built $out ($(stat -c %s "$out") bytes)" >&2
