#!/usr/bin/env bash
# Installs what pytest-fastcollect needs to build and test on Debian 12 (apt packages when run as root),
# builds the wheel once, and makes a venv with it: `scripts/bootstrap.sh VENV [pip requirement ...]`.
# Idempotent; safe to run again. Pins: pyproject.toml (build) and the requirements given by the caller.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:?usage: bootstrap.sh VENV [requirements...]}
shift

apt_packages=(g++ cmake ninja-build python3-venv python3-dev libxxhash-dev libsqlite3-dev libgtest-dev)
# scripts/test.sh adds the sanitizer and fuzzing toolchain: FASTCOLLECT_APT_EXTRA="clang-14 libclang-rt-14-dev"
read -r -a extra <<< "${FASTCOLLECT_APT_EXTRA:-}"
apt_packages+=("${extra[@]}")
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade "pip==26.3" 2>&1 | grep -v "^WARNING: Location" || true

# Build the wheel once per source state and Python version, reuse it for every venv of that version.
pytag=$("$venv/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
wheel_dir="$here/build/wheels/$pytag"
stamp=$(cd "$here" && { git ls-files -s src CMakeLists.txt cmake pyproject.toml 2>/dev/null; git diff HEAD -- src CMakeLists.txt cmake pyproject.toml 2>/dev/null; git ls-files -o --exclude-standard src cmake 2>/dev/null | sort | xargs -r sha1sum; } | sha1sum | cut -c1-12)
if [ ! -f "$wheel_dir/.stamp-$stamp" ]; then
  rm -rf "$wheel_dir" && mkdir -p "$wheel_dir"
  echo "bootstrap: building the wheel (tree-sitter sources are fetched by the build, pinned)"
  "$venv/bin/python" -m pip wheel -q --no-deps -w "$wheel_dir" "$here" 2>&1 | grep -v "^WARNING: Location" || true
  touch "$wheel_dir/.stamp-$stamp"
fi
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel_dir"/pytest_fastcollect-*.whl 2>&1 | grep -v "^WARNING: Location" || true
"$venv/bin/python" -m pip install -q "$@" 2>&1 | grep -v "^WARNING: Location" || true
"$venv/bin/python" -c "import pytest_fastcollect._core, pytest; print('bootstrap: pytest', pytest.__version__, 'with pytest-fastcollect in', '$venv')"
