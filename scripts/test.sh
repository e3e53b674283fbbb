#!/usr/bin/env bash
# Runs every test: the GoogleTest binary through ctest, then the Python suite (pytester end-to-end tests
# and the parity referee on the corpus) with the newest pytest and with pytest 8.4.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

bash scripts/bootstrap.sh "$here/.venv" "pytest==9.2.0" "pytest-xdist==3.8.0" "pytest-cov==7.1.0" "coverage==7.17.0"

echo "== C++: GoogleTest via ctest"
cmake -S . -B build/ctest -G Ninja -DBUILD_TESTING=ON -DFASTCOLLECT_BUILD_EXTENSION=OFF \
  -DFASTCOLLECT_SDIST_DIR="$(ls -d build/cp3*/_sdists 2>/dev/null | head -1)" >/dev/null
cmake --build build/ctest
(cd build/ctest && ctest --output-on-failure -j2)

echo "== Python: pytest 9.x"
"$here/.venv/bin/python" -m pytest tests/python -p no:cacheprovider "$@"

echo "== Python: pytest 8.x"
bash scripts/bootstrap.sh "$here/.venv-pytest8" "pytest==8.4.2" "pytest-xdist==3.8.0" "pytest-cov==7.1.0" "coverage==7.17.0"
"$here/.venv-pytest8/bin/python" -m pytest tests/python -p no:cacheprovider "$@"
