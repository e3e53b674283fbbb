"""The repeating referee: both sides N times, alternating, judged by what differs beyond chance.

One run per side cannot tell a flaky test from a difference, nor catch a difference that shows in a third
of the runs. With `--repeat N` (N >= 2) the plain side (`-p no:fastcollect`) and the plugin side run N times
each, alternating (plain, plugin, plain, ...), so load and caches affect both alike. Then, per fact:

- collection (node IDs in order, collection errors, the number deselected) and, with `--cov`, the coverage
  report: when every plain run gives the same value, every plugin run must give it too (one plugin run
  that differs is a difference: the plain side showed it is deterministic); when plain runs differ among
  themselves, the value is compared like an outcome below.
- the outcome of each test (the sequence of its phase reports: `setup:passed call:failed ...`) and the exit
  code: if each side gives one value in all its runs, the two values must be equal (a deterministic
  difference); otherwise, for each value seen, a two-sided Fisher exact test on how many runs of each side
  gave it: p < ALPHA is a difference ("distribution differs"); anything else is reported as flaky on both
  sides, not as a difference.
- the summary line is compared only when every outcome is deterministic on both sides.

Fisher's exact test: the hypergeometric probability of each 2x2 table with the observed margins, summed
over tables no more probable than the observed one (R. A. Fisher, Statistical Methods for Research Workers,
1934, section 21.02). With N = 20 per side, 0 of 20 against 7 of 20 gives p = 0.008.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .referee import Side, compare, coverage_report, run_side

#: A distribution difference below this two-sided p-value is reported as a difference.
ALPHA = 0.01


def fisher_two_sided(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test for the 2x2 table [[a, b], [c, d]] (a + b runs of one side
    of which a had the value, c + d of the other of which c had it)."""
    row1, row2, col1 = a + b, c + d, a + c
    n = row1 + row2
    total = math.comb(n, col1)

    def prob(x: int) -> float:
        return math.comb(row1, x) * math.comb(row2, col1 - x) / total

    observed = prob(a)
    low, high = max(0, col1 - row2), min(row1, col1)
    p = sum(pr for pr in (prob(x) for x in range(low, high + 1)) if pr <= observed * (1 + 1e-9))
    return min(1.0, p)


def outcomes_by_test(side: Side) -> dict[str, str]:
    """nodeid -> the sequence of its phase reports ("setup:passed call:failed teardown:passed"; xfail marked)."""
    out: dict[str, list[str]] = {}
    for nodeid, when, outcome, wasxfail in side.outcomes():
        out.setdefault(nodeid, []).append(f"{when}:{outcome}{'(xfail)' if wasxfail else ''}")
    return {k: " ".join(v) for k, v in out.items()}


@dataclass
class Verdict:
    """What the repeated runs show: `differences` (each a line; any makes the verdict fail), `flaky` (facts
    that vary on both sides alike), the runs of each side."""

    plain: list[Side]
    plugin: list[Side]
    differences: list[str] = field(default_factory=list)
    flaky: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def _distribution(name: str, plain: Sequence[Any], plugin: Sequence[Any], verdict: Verdict) -> None:
    """Compare one fact's values across the runs of both sides (module docstring)."""
    cp, cq = Counter(map(repr, plain)), Counter(map(repr, plugin))
    if len(cp) == 1 and len(cq) == 1:
        if cp.keys() != cq.keys():
            verdict.differences.append(f"{name}: {_short(plain[0])} (plain) vs {_short(plugin[0])} (plugin), in every run")
        return
    n, m = len(plain), len(plugin)
    worst: tuple[float, str] | None = None
    for value in set(cp) | set(cq):
        p = fisher_two_sided(cp[value], n - cp[value], cq[value], m - cq[value])
        if worst is None or p < worst[0]:
            worst = (p, value)
    assert worst is not None
    p, value = worst
    text = (f"{name}: {_short(value)} in {cp[value]} of {n} plain runs, {cq[value]} of {m} plugin runs "
            f"(Fisher p = {p:.3g})")
    if p < ALPHA:
        verdict.differences.append(text + ": distribution differs")
    else:
        verdict.flaky.append(text)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def judge(plain: list[Side], plugin: list[Side], *, ordered: bool = True, daemon: bool = False,
          require_active: bool = True) -> Verdict:
    """The verdict on N runs per side (see the module docstring)."""
    verdict = Verdict(plain, plugin)
    # every pair's structural checks (records written, plugin active, served by the daemon)
    for i, (a, b) in enumerate(zip(plain, plugin)):
        structural = [d for d in compare(a, b, ordered=ordered, require_active=require_active, daemon=daemon).differences
                      if d.startswith(("plain side", "plugin side", "plugin was not"))]
        verdict.differences.extend(f"run {i + 1}: {d}" for d in structural)

    def items(side: Side) -> Any:
        got = list(side.record.get("items", []))
        return got if ordered else sorted(got)

    def collect_errors(side: Side) -> Any:
        return sorted(e[0] for e in side.record.get("collect_errors", []))

    collection: list[tuple[str, Callable[[Side], Any]]] = [
        ("items", items),
        ("collection errors", collect_errors),
        ("deselected", lambda s: s.record.get("deselected")),
        ("coverage report", lambda s: coverage_report(s.stdout)),
    ]
    for name, fact in collection:
        values_plain = [fact(s) for s in plain]
        values_plugin = [fact(s) for s in plugin]
        if all(v == values_plain[0] for v in values_plain):
            bad = [i + 1 for i, v in enumerate(values_plugin) if v != values_plain[0]]
            if bad:
                example = values_plugin[bad[0] - 1]
                detail = _list_diff(values_plain[0], example) if isinstance(example, list) else _short(example)
                verdict.differences.append(f"{name}: plugin runs {bad} differ from every plain run: {detail}")
        else:
            _distribution(name, values_plain, values_plugin, verdict)
    outcome_plain = [outcomes_by_test(s) for s in plain]
    outcome_plugin = [outcomes_by_test(s) for s in plugin]
    tests = sorted({t for o in outcome_plain + outcome_plugin for t in o})
    deterministic = True
    for test in tests:
        a = [o.get(test, "not run") for o in outcome_plain]
        b = [o.get(test, "not run") for o in outcome_plugin]
        if len(set(a)) > 1 or len(set(b)) > 1:
            deterministic = False
        _distribution(f"outcome {test}", a, b, verdict)
    _distribution("exit code", [s.returncode for s in plain], [s.returncode for s in plugin], verdict)
    if deterministic and len({s.summary for s in plain}) == 1:
        _distribution("summary line", [s.summary for s in plain], [s.summary for s in plugin], verdict)
    return verdict


def _list_diff(expected: list[Any], got: list[Any]) -> str:
    missing = [x for x in expected if x not in got]
    extra = [x for x in got if x not in expected]
    if not missing and not extra:
        return "same values in another order"
    return f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, extra {extra[:5]}{'...' if len(extra) > 5 else ''}"


def repeat_referee(
    path: Path,
    args: list[str],
    repeat: int,
    extra: list[str],
    env: dict[str, str] | None,
    timeout: float,
    *,
    record_path: str | None = None,
    ordered: bool = True,
    daemon: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Verdict:
    """Run plain and plugin sides `repeat` times each, alternating, and judge (see the module docstring).
    `extra`: the plugin side's own arguments; `record_path`: the plugin side's record file (fixed for a
    daemon: the environment is part of its key)."""
    plain: list[Side] = []
    plugin: list[Side] = []
    for i in range(repeat):
        plain.append(run_side("plain", path, args, ["-p", "no:fastcollect"], env, timeout))
        plugin.append(run_side("plugin", path, args, extra, env, timeout, record_path))
        if progress is not None:
            progress(f"run {i + 1}/{repeat}: plain exit {plain[-1].returncode} ({plain[-1].seconds:.1f}s), "
                     f"plugin exit {plugin[-1].returncode} ({plugin[-1].seconds:.1f}s)")
    return judge(plain, plugin, ordered=ordered, daemon=daemon)


def format_verdict(verdict: Verdict) -> str:
    n = len(verdict.plain)
    sides = []
    for name, runs in (("plain", verdict.plain), ("plugin", verdict.plugin)):
        items = {len(s.record.get("items", [])) for s in runs}
        exits = Counter(s.returncode for s in runs)
        secs = sorted(s.seconds for s in runs)
        sides.append(f"{name:>6}: {n} runs, items {sorted(items)}, exit codes {dict(exits)}, "
                     f"median {secs[len(secs) // 2]:.2f}s; {runs[-1].summary!r}")
    served = sum(1 for s in verdict.plugin if ((s.record or {}).get("fastcollect") or {}).get("served_by_daemon"))
    if served:
        sides.append(f"plugin: {served} of {n} runs served by the warm daemon")
    lines = sides + [f"flaky on both sides (not differences): {len(verdict.flaky)}"]
    lines += [f"  ~ {x}" for x in verdict.flaky[:20]]
    if verdict.ok:
        lines.append(f"parity: 0 differences in {n} runs per side")
    else:
        lines.append(f"parity: {len(verdict.differences)} differences in {n} runs per side")
        lines += [f"  - {x}" for x in verdict.differences[:40]]
        if len(verdict.differences) > 40:
            lines.append(f"  ... {len(verdict.differences) - 40} more")
    return "\n".join(lines)


__all__ = ["ALPHA", "Verdict", "coverage_report", "fisher_two_sided", "format_verdict", "judge", "repeat_referee"]
