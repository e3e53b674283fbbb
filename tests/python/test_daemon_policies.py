"""The levels' policies driven without a daemon: a Level0 / Level1 with its real ForkServer, whose socket-facing
methods (refuse, run, bind) and the channel (tell) are replaced by recorders; the checkpoint holds a stub
snapshot whose plan() is what the test says. Each test asserts what the policy decides for one situation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pytest_fastcollect.daemon import channel
from pytest_fastcollect.daemon.freshness import Plan
from pytest_fastcollect.daemon.level0 import Build, Level0
from pytest_fastcollect.daemon.level1 import REWARM_DEBOUNCE, WORKER_FRESH, Level1, memory_restart_reason
from pytest_fastcollect.daemon.spec import Spec
from pytest_fastcollect.daemon.warmup import WarmResult


class StubSnapshot:
    """A freshness.Snapshot stand-in: plan() returns `plan`, changed_paths() `changed`."""

    def __init__(self, plan: Plan | None = None, changed: list[str] | None = None) -> None:
        self.next_plan = plan or Plan(changed=[])
        self.changed = changed or []
        self.created = time.time()
        self.entries: dict[str, Any] = {}
        self.project_file_count = 0

    def plan(self, modules: Any) -> Plan:
        return self.next_plan

    def changed_paths(self) -> list[str]:
        return list(self.changed)


class FakeConn:
    def __init__(self) -> None:
        self.closed = False

    def fileno(self) -> int:
        return 99

    def close(self) -> None:
        self.closed = True


def _spec(tmp_path: Path, **kw: Any) -> Spec:
    return Spec(key="k" * 20, folder=str(tmp_path), rootdir=str(tmp_path), cwd=str(tmp_path), warm_args=[],
                idle_timeout=kw.pop("idle_timeout", 60.0), lock_fd=-1, files_digest="d1", **kw)


def _request(**kw: Any) -> dict[str, Any]:
    return {"type": "run", "key": "k" * 20, "argv": ["pytest"], "files_digest": "d1", **kw}


@pytest.fixture
def level1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Level1:
    policy = Level1(_spec(tmp_path), link=None)
    policy.checkpoint.state = "ready"
    policy.checkpoint.snapshot = StubSnapshot()  # type: ignore[assignment]
    policy.checkpoint.result = WarmResult("imports", files_digest="d1")
    policy.told: list[channel.Message] = []  # type: ignore[attr-defined]
    policy.refused: list[str] = []  # type: ignore[attr-defined]

    def tell(message: channel.Message, fds: list[int] | None = None) -> bool:
        policy.told.append(message)  # type: ignore[attr-defined]
        return True

    monkeypatch.setattr(policy, "tell", tell)
    monkeypatch.setattr(policy.server, "refuse", lambda conn, fds, reason: policy.refused.append(reason))  # type: ignore[attr-defined]
    return policy


def test_level1_serves_a_fresh_checkpoint(level1: Level1) -> None:
    plan = Plan(changed=[], evict=[])
    level1.checkpoint.snapshot.next_plan = plan  # type: ignore[union-attr]
    assert level1.admit(FakeConn(), _request(), [], worker=False) is plan  # type: ignore[arg-type]
    assert level1.told == [] and level1.refused == []  # type: ignore[attr-defined]


def test_level1_forwards_a_measured_run_and_an_xdist_worker_and_stays(level1: Level1) -> None:
    conn = FakeConn()
    assert level1.admit(conn, _request(fresh="pytest-cov --cov"), [], worker=False) is None  # type: ignore[arg-type]
    assert level1.admit(FakeConn(), _request(), [], worker=True) is None  # type: ignore[arg-type]
    forwards = level1.told  # type: ignore[attr-defined]
    assert [(m.reason, m.fresh, m.worker) for m in forwards] == [("pytest-cov --cov", True, False), (WORKER_FRESH, True, True)]
    assert conn.closed and level1.server.counters.served == 2
    assert level1.asked_rebuild is None  # level 1 stays: no rebuild


def test_level1_hands_on_a_run_with_other_test_files_and_expects_them_next(level1: Level1) -> None:
    assert level1.admit(FakeConn(), _request(files_digest="d2"), [], worker=False) is None  # type: ignore[arg-type]
    (forward,) = level1.told  # type: ignore[attr-defined]
    assert isinstance(forward, channel.Forward) and not forward.fresh and forward.files_digest == "d2"
    assert "added or removed" in forward.reason and level1.asked_rebuild is not None


def test_level1_hands_on_a_run_its_plan_refuses(level1: Level1) -> None:
    level1.checkpoint.snapshot.next_plan = Plan(changed=["conftest.py"], refuse="conftest.py changed")  # type: ignore[union-attr]
    assert level1.admit(FakeConn(), _request(), [], worker=False) is None  # type: ignore[arg-type]
    (forward,) = level1.told  # type: ignore[attr-defined]
    assert forward.reason == "conftest.py changed" and forward.files_digest is None


def test_level1_refuses_when_not_ready(level1: Level1) -> None:
    level1.checkpoint.state, level1.checkpoint.state_reason = "not forkable", "threads alive"
    level1.checkpoint.result = None
    assert level1.admit(FakeConn(), _request(), [], worker=False) is None  # type: ignore[arg-type]
    assert level1.refused == ["template not forkable: threads alive"]  # type: ignore[attr-defined]


def test_level1_without_level0_refuses_then_stops(level1: Level1, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(level1, "tell", lambda message, fds=None: False)
    level1.checkpoint.snapshot.next_plan = Plan(changed=[], refuse="pytest.ini changed")  # type: ignore[union-attr]
    assert level1.admit(FakeConn(), _request(), [], worker=False) is None  # type: ignore[arg-type]
    assert level1.refused == ["pytest.ini changed"] and level1.rebuild_reason == "pytest.ini changed"  # type: ignore[attr-defined]
    level1.tick()
    assert level1.server.stopping


def test_level1_asks_for_a_rewarm_after_the_debounce(level1: Level1) -> None:
    plan = Plan(changed=[str(Path(level1.spec.rootdir) / "pkg" / "mod.py")])
    level1.forked(123, _request(), False, plan)
    assert level1.rewarm_due == "1 changed file (pkg/mod.py)"
    level1.checkpoint.snapshot.changed = plan.changed  # type: ignore[union-attr]
    level1.server.last_run_at = time.monotonic()
    level1.tick()
    assert level1.told == []  # within the debounce  # type: ignore[attr-defined]
    level1.server.last_run_at = time.monotonic() - REWARM_DEBOUNCE - 0.1
    level1.tick()
    (rewarm,) = level1.told  # type: ignore[attr-defined]
    assert isinstance(rewarm, channel.Rewarm) and rewarm.reason == "re-warm: 1 changed file (pkg/mod.py)"
    assert level1.rewarm_due is None and level1.asked_rebuild is not None


def test_level1_drops_a_rewarm_for_a_file_changed_back(level1: Level1) -> None:
    level1.forked(123, _request(), False, Plan(changed=[str(Path(level1.spec.rootdir) / "m.py")]))
    level1.server.last_run_at = time.monotonic() - REWARM_DEBOUNCE - 0.1
    level1.tick()  # snapshot.changed_paths() is empty: nothing to warm
    assert level1.told == [] and level1.rewarm_due is None  # type: ignore[attr-defined]


def test_level1_asks_for_a_rebuild_when_idle_over_the_memory_limit(level1: Level1, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_fastcollect.daemon import level1 as module

    level1.link = object()  # type: ignore[assignment]  # (a level 0 to ask: tell is the recorder)
    level1.spec.max_memory_mib = 100
    level1.checkpoint.rss_kib = 50 * 1024
    monkeypatch.setattr(module, "rss_kib", lambda: 200 * 1024)
    level1.tick()
    assert level1.rebuild_reason == "memory limit: RSS 200 MiB > 100 MiB"
    level1.tick()
    (rebuild,) = level1.told  # type: ignore[attr-defined]
    assert isinstance(rebuild, channel.Rebuild) and rebuild.reason == "memory limit: RSS 200 MiB > 100 MiB"
    assert rebuild.files_digest == "d1" and level1.rebuild_reason is None and level1.asked_rebuild is not None
    assert memory_restart_reason(200 * 1024, 190 * 1024, 100) is None  # grown by less than 10%: serves on


@pytest.fixture
def level0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Level0:
    policy = Level0(_spec(tmp_path))
    policy.checkpoint.state = "ready"
    policy.checkpoint.snapshot = StubSnapshot()  # type: ignore[assignment]
    policy.refused: list[str] = []  # type: ignore[attr-defined]
    policy.built: list[tuple[str, Any]] = []  # type: ignore[attr-defined]
    policy.ran: list[tuple[Any, dict[str, Any], list[int], bool]] = []  # type: ignore[attr-defined]
    monkeypatch.setattr(policy.server, "refuse", lambda conn, fds, reason: policy.refused.append(reason))  # type: ignore[attr-defined]
    monkeypatch.setattr(policy.server, "run", lambda conn, request, fds, worker=False: policy.ran.append((conn, request, fds, worker)))  # type: ignore[attr-defined]
    monkeypatch.setattr(policy, "build", lambda reason, files_digest=None, dirty_retries=0, successor_of=0: policy.built.append((reason, files_digest)))  # type: ignore[attr-defined]
    monkeypatch.setattr(policy, "_take_back", lambda: policy.built.append(("take back", None)))  # type: ignore[attr-defined]
    return policy


def test_level0_serves_any_run_of_its_key(level0: Level0) -> None:
    assert level0.admit(FakeConn(), _request(), [], worker=False) is not None  # type: ignore[arg-type]
    assert level0.served_here == 1 and level0.restart_reason is None and level0.built == []  # type: ignore[attr-defined]


def test_level0_restarts_when_what_it_holds_changed(level0: Level0) -> None:
    level0.checkpoint.snapshot.next_plan = Plan(changed=["_pytest/main.py"], refuse="pytest's files changed")  # type: ignore[union-attr]
    assert level0.admit(FakeConn(), _request(), [], worker=False) is None  # type: ignore[arg-type]
    assert level0.refused == ["pytest's files changed"] and level0.restart_reason == "pytest's files changed"  # type: ignore[attr-defined]


def test_level0_builds_for_other_test_files_only_after_the_run(level0: Level0) -> None:
    assert level0.admit(FakeConn(), _request(files_digest="d2"), [], worker=False) is not None  # type: ignore[arg-type]
    assert level0.built == []  # not while the client's fds are open here  # type: ignore[attr-defined]
    level0.after_request()
    assert level0.built == [("rebuild: test files added or removed", "d2")]  # type: ignore[attr-defined]


def test_level0_serves_a_forwarded_fresh_run_and_keeps_level1(level0: Level0) -> None:
    import socket as socket_module

    a, b = socket_module.socketpair()
    build = Build(pid=4242, channel=None, started=time.monotonic(), reason="started", holding=True, state="ready")
    level0.builds[build.pid] = build
    level0.on_forward(channel.Forward("pytest-cov --cov", None, False, _request(), None, True), build, [a.detach(), 7, 8])
    ((conn, request, fds, worker),) = level0.ran  # type: ignore[attr-defined]
    assert fds == [7, 8] and not worker and level0.built == [] and build.holding  # type: ignore[attr-defined]
    assert level0.level_note() == "pytest-cov --cov" and level0.level_note() != "pytest-cov --cov"  # (consumed)
    conn.close()
    b.close()


def test_level0_takes_the_socket_back_for_a_run_level1_cannot_serve(level0: Level0) -> None:
    import socket as socket_module

    a, b = socket_module.socketpair()
    build = Build(pid=4242, channel=None, started=time.monotonic(), reason="started", holding=True, state="ready")
    level0.builds[build.pid] = build
    level0.on_forward(channel.Forward("conftest.py changed", None, False, _request(), {"served": 5}, False), build, [a.detach()])
    assert level0.built == [("take back", None)]  # type: ignore[attr-defined]
    assert level0.pending_build == ("rebuild: conftest.py changed", None)
    assert level0.server.counters.served == 5
    assert level0.level_note() == "level 1 is being rebuilt: conftest.py changed"
    level0.ran[0][0].close()  # type: ignore[attr-defined]
    b.close()


def test_level0_builds_again_for_a_dirty_warmup(level0: Level0) -> None:
    build = Build(pid=4242, channel=None, started=time.monotonic(), reason="started")
    level0.builds[build.pid] = build
    level0.on_rebuild(channel.Rebuild("2 files changed during the warm-up", "d1", None, 1), build, [])
    assert level0.built == [("started; warmed again: 2 files changed during the warm-up", "d1")]  # type: ignore[attr-defined]
    assert build.state == "rebuild"


def test_level0_notes_a_level1_that_is_not_ready(level0: Level0) -> None:
    build = Build(pid=4242, channel=None, started=time.monotonic(), reason="started")
    level0.builds[build.pid] = build
    level0.on_not_ready(channel.NotReady("not forkable", "threads alive after warming: t"), build, [])
    assert level0.level_note() == "level 1 not forkable: threads alive after warming: t"
    assert not level0.idle()  # a level 1 process is still there to reap


def test_level0_stays_when_level1_takes_the_socket(level0: Level0) -> None:
    level0.server.handing_over = True
    assert level0.handed_over() is False and level0.server.handing_over is False
    level0.reload()
    assert level0.restart_reason == "reload requested"
