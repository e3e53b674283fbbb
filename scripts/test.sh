#!/usr/bin/env bash
# Runs every test: the GoogleTest binary through ctest (also under ASan+UBSan), the fuzz targets for a short
# time, then the Python suite (pytester end-to-end tests and the parity referee on the corpus) with the newest
# pytest and with pytest 8.4, on FASTCOLLECT_TEST_JOBS (2) xdist workers.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

export FASTCOLLECT_APT_EXTRA="clang-14 libclang-rt-14-dev"  # the sanitizer and fuzzing builds below
bash scripts/bootstrap.sh "$here/.venv" "pytest==9.2.0" "pytest-xdist==3.8.0" "pytest-cov==7.1.0" "coverage==7.17.0" "numpy==2.4.6" "watchfiles==1.3.0"
sdists=$(ls -d "$here"/build/cp3*/_sdists 2>/dev/null | head -1)
fuzz_seconds=${FASTCOLLECT_FUZZ_SECONDS:-20}

echo "== C++: GoogleTest via ctest"
cmake -S . -B build/ctest -G Ninja -DBUILD_TESTING=ON -DFASTCOLLECT_BUILD_EXTENSION=OFF \
  -DFASTCOLLECT_SDIST_DIR="$sdists" >/dev/null
cmake --build build/ctest
(cd build/ctest && ctest --output-on-failure -j2)

echo "== C++: GoogleTest under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build/asan -G Ninja -DBUILD_TESTING=ON -DFASTCOLLECT_BUILD_EXTENSION=OFF -DFASTCOLLECT_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFASTCOLLECT_SDIST_DIR="$sdists" >/dev/null
cmake --build build/asan
(cd build/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2)

echo "== fuzzing: ${fuzz_seconds}s per target (FASTCOLLECT_FUZZ_SECONDS; seeds in tests/fuzz/corpus)"
CC=clang-14 CXX=clang++-14 cmake -S . -B build/fuzz -G Ninja -DFASTCOLLECT_FUZZ=ON -DFASTCOLLECT_BUILD_EXTENSION=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFASTCOLLECT_SDIST_DIR="$sdists" >/dev/null
cmake --build build/fuzz
for target in expression scanner module_info; do
  work=$(mktemp -d)
  log="$work.log"
  if ! build/fuzz/fuzz_$target -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -print_final_stats=1 \
      "$work" tests/fuzz/corpus/$target >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz_$target: FAILED (the input is in the lines above: crash-*/leak-*/timeout-* in $PWD)"
    exit 1
  fi
  grep -E "^Done|stat::number_of_executed_units|stat::peak_rss" "$log" | sed "s/^/fuzz_$target: /" || true
  rm -rf "$work" "$log"
done
"$here/.venv/bin/python" tests/fuzz/fuzz_frames.py --seconds "$fuzz_seconds"

jobs=${FASTCOLLECT_TEST_JOBS:-2}  # pytest-xdist workers for the Python suite (its tests mostly wait on subprocesses)
echo "== Python: pytest 9.x"
"$here/.venv/bin/python" -m pytest tests/python -p no:cacheprovider -n "$jobs" "$@"

echo "== Python: pytest 8.x"
bash scripts/bootstrap.sh "$here/.venv-pytest8" "pytest==8.4.2" "pytest-xdist==3.8.0" "pytest-cov==7.1.0" "coverage==7.17.0" "numpy==2.4.6" "watchfiles==1.3.0"
"$here/.venv-pytest8/bin/python" -m pytest tests/python -p no:cacheprovider -n "$jobs" "$@"
