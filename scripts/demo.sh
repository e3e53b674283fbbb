#!/usr/bin/env bash
# The main job: install pytest-fastcollect, then run plain `pytest` with the plugin on click's real test
# suite (from its PyPI sdist, in a venv outside this repo), then the parity referee on the same suite.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/bootstrap.sh "$here/.venv" "pytest==9.2.0" "pytest-xdist==3.8.0"
suite=$("$here/.venv/bin/python" benchmarks/suites.py click)
py=$(printf '%s' "$suite" | "$here/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["python"])')
cwd=$(printf '%s' "$suite" | "$here/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["cwd"])')
mapfile -t args < <(printf '%s' "$suite" | "$here/.venv/bin/python" -c 'import json,sys; print("\n".join(json.load(sys.stdin)["args"]))')
cd "$cwd"
echo "== pytest with pytest-fastcollect on click ($cwd)"
"$py" -m pytest "${args[@]}" -q -rN --no-header "$@" | tail -3 || true
"$py" -m pytest "${args[@]}" --collect-only | sed -n '1,6p'
echo "== parity referee: full run of click's suite, plugin on vs -p no:fastcollect"
"$py" -m pytest_fastcollect.parity "$cwd" --run -- "${args[@]}"
