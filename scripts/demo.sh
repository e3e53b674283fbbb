#!/usr/bin/env bash
# The main job: install pytest-fastcollect, then run plain `pytest` with the plugin on click's real test
# suite (from its PyPI sdist, in a venv outside this repo), then the repeating parity referee on the same
# suite (both sides REPEAT times, alternating: a test flaky in plain pytest too, such as click's
# timing-sensitive pager tests under load, is reported as flaky, not as a difference), a -k run that leaves
# files unimported (and its referee), then the same through the warm daemon (a second run served by the
# daemon the first one started). REPEAT defaults to 5. The single runs only show what a user sees (a flaky
# click test may fail in them, as in plain pytest); the referees decide the exit code.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/bootstrap.sh "$here/.venv" "pytest==9.2.0" "pytest-xdist==3.8.0"
suite=$("$here/.venv/bin/python" benchmarks/suites.py click)
py=$(printf '%s' "$suite" | "$here/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["python"])')
cwd=$(printf '%s' "$suite" | "$here/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["cwd"])')
mapfile -t args < <(printf '%s' "$suite" | "$here/.venv/bin/python" -c 'import json,sys; print("\n".join(json.load(sys.stdin)["args"]))')
cd "$cwd"
# every daemon this demo starts (also those the referee's plugin side starts) lives in this socket folder
export XDG_RUNTIME_DIR=$(mktemp -d /tmp/fcdemoXXXX)   # a socket folder of its own (removed at the end)
chmod 700 "$XDG_RUNTIME_DIR"
# and a temporary folder of its own: pytest's tmp_path root (<TMPDIR>/pytest-of-<user>) is shared by every
# pytest session of the user, and one session's clean-up of old folders can race another's (a PytestWarning
# "(rm_rf) error removing .../garbage-...", an error under click's filterwarnings; pytest-dev/pytest#13269)
export TMPDIR="$XDG_RUNTIME_DIR/tmp"
mkdir -p "$TMPDIR"
stop_daemons() {  # every daemon started here (the referee's has a key of its own), then their folders
  for f in "$XDG_RUNTIME_DIR"/pytest-fastcollect/*.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 1; rm -rf "$XDG_RUNTIME_DIR"
}
trap stop_daemons EXIT
echo "== pytest with pytest-fastcollect on click ($cwd)"
"$py" -m pytest "${args[@]}" -q -rN --no-header "$@" | tail -3 || true
"$py" -m pytest "${args[@]}" --collect-only | sed -n '1,6p'
repeat=${REPEAT:-5}
echo "== parity referee: full run of click's suite, plugin on vs -p no:fastcollect, $repeat runs per side"
"$py" -m pytest_fastcollect.parity "$cwd" --run --repeat "$repeat" -- "${args[@]}"
echo "== -k before import: the first run records the collection, the next -k run leaves files unimported"
"$py" -m pytest "${args[@]}" --no-fastcollect-auto-daemon --collect-only -q | tail -1
"$py" -m pytest "${args[@]}" --no-fastcollect-auto-daemon -k "test_echo and not pager" | grep -E "left unimported|passed|failed" || true
echo "== parity referee with -k (after a recorded run): plugin on vs -p no:fastcollect"
"$py" -m pytest_fastcollect.parity "$cwd" --run --prime --repeat "$repeat" -- "${args[@]}" -k "test_echo and not pager"
echo "== the warm daemon: the first run starts one, the second is served by it"
"$py" -m pytest "${args[@]}" --fastcollect-auto-daemon -q | tail -1 || true
"$py" -m pytest "${args[@]}" --daemon-start | sed -n '1p'
"$py" -m pytest "${args[@]}" --fastcollect-auto-daemon | grep -E "warm daemon|passed" || true
"$py" -m pytest "${args[@]}" --daemon-status
echo "== parity referee through the daemon: full run of click's suite, $repeat runs per side"
"$py" -m pytest_fastcollect.parity "$cwd" --run --daemon --repeat "$repeat" -- "${args[@]}"
