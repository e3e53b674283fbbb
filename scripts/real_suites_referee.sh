#!/usr/bin/env bash
# The repeating referee through the warm daemon on the real suites (docs/real-suites.md, issue 17's "Show"):
# click's full run REPEAT_CLICK times per side (default 20), attrs, a sympy subpackage and a pandas subpackage
# REPEAT times per side (default 5), each served from level 1 (the warm template) and from level 0 (the
# project imported fresh: --fastcollect-daemon-fresh). Each comparison's JSON goes to OUT (default
# benchmarks/results/real-suites-referee-<date>/), one line per comparison is printed; exit 1 on any
# difference. Suites are installed by benchmarks/suites.py (pinned); a daemon socket folder of its own.
# Takes about an hour on 2 cores.  Usage: bash scripts/real_suites_referee.sh [suite ...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
out=${OUT:-$here/benchmarks/results/real-suites-referee-$(date +%Y-%m-%d)}
mkdir -p "$out"
export XDG_RUNTIME_DIR=$(mktemp -d /tmp/fcrefXXXX)
chmod 700 "$XDG_RUNTIME_DIR"
export TMPDIR="$XDG_RUNTIME_DIR/tmp"  # pytest's tmp_path root of its own (see demo.sh: pytest-dev/pytest#13269)
mkdir -p "$TMPDIR"
stop_daemons() {
  for f in "$XDG_RUNTIME_DIR"/pytest-fastcollect/*.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 1; rm -rf "$XDG_RUNTIME_DIR"
}
trap stop_daemons EXIT
status=0
referee() {  # name repeat served-from suite-python cwd -- pytest args
  local name=$1 repeat=$2 level=$3 python=$4 cwd=$5; shift 5
  local extra=()
  [ "$level" = 0 ] && extra=(--plugin-arg=--fastcollect-daemon-fresh)
  local start=$SECONDS
  (cd "$cwd" && "$python" -m pytest_fastcollect.parity . --run --daemon --repeat "$repeat" --json "${extra[@]}" "$@") \
    > "$out/$name-level$level.json" || status=1
  "$py" - "$out/$name-level$level.json" "$name" "$level" "$((SECONDS - start))" <<'EOF'
import json, sys
path, name, level, secs = sys.argv[1:]
try:
    v = json.load(open(path))
except ValueError:
    print(f"{name:8} level {level}: no verdict (see {path})"); sys.exit()
served = sum(1 for s in v["plugin"]["served"] if s)
early = sum(1 for n in v["plugin"].get("daemon_notes", []) if n and "handed off before pytest" in n)
print(f"{name:8} level {level}: {'ok' if v['ok'] else 'DIFFERENT'}, {len(v['differences'])} differences, "
      f"{len(v['flaky'])} flaky, {v['repeat']} runs per side, {served}/{v['repeat']} served "
      f"({early} handed off early); "
      f"plain {sorted(set(v['plain']['summaries']))} exits {sorted(set(v['plain']['exits']))}; "
      f"plugin {sorted(set(v['plugin']['summaries']))}; {secs} s")
for line in v["differences"] + v["flaky"]:
    print("    " + line)
EOF
}
suite() { "$py" "$here/benchmarks/suites.py" "$1"; }
field() { "$py" -c "import json,sys; d=json.load(sys.stdin); v=d['$1']; print('\n'.join(v) if isinstance(v, list) else v)"; }
want=("${@:-click attrs sympy pandas}")
read -r -a want <<< "${want[*]}"
for name in "${want[@]}"; do
  json=$(suite "$name")
  python=$(field python <<< "$json"); cwd=$(field cwd <<< "$json")
  case $name in
    click) args=(-W ignore::DeprecationWarning -p no:cacheprovider); repeat=${REPEAT_CLICK:-20} ;;
    attrs) args=(tests -p no:cacheprovider); repeat=${REPEAT:-5} ;;
    sympy) args=(--pyargs sympy.combinatorics -m "not slow and not tooslow" -p no:cacheprovider); repeat=${REPEAT:-5} ;;
    # pandas' options (--no-strict-data-files) live in pandas/conftest.py, which pytest loads early only for
    # a path argument, not for --pyargs: so the subpackage is given by its installed path.
    pandas) site=$("$python" -c "import os, pandas; print(os.path.dirname(pandas.__file__))")
            args=("$site/tests/tseries" --rootdir="$cwd" --no-strict-data-files -p no:cacheprovider); repeat=${REPEAT:-5} ;;
    *) echo "unknown suite $name" >&2; exit 2 ;;
  esac
  for level in 1 0; do
    referee "$name" "$repeat" "$level" "$python" "$cwd" -- "${args[@]}"
  done
done
exit $status
