"""Crash-point injection (issue 18, section 2): the whole production flow (Flow.run:
state, controller, deployment record) on the scripted backend and fake clock is
killed at EVERY point where a kill changes what a successor sees: before and after
each external action (start, set_weights, drain, stop) and after each save of the
state. The points are enumerated by running the rollout once uninterrupted and
counting them; then, for N = 1..total, a fresh world is killed at point N and a new
run (Flow.recover_previous, as `invoke deploy.production` does first) finishes the
job. After every one:

- exactly one colour serves, with 100% (none, after a failed first deployment);
- no colour was ever stopped while the proxy gave it traffic;
- the rollout's deployment record is closed, once, with the truth: "succeeded" iff
  the new colour serves, else "rolled_back" (first deployment: "failed").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ci.history import open_store
from ci.runner import Runner
from ci.settings import load
from deploy import notify
from deploy.record import DeploymentLog
from deploy.rollout import config, flow, state
from deploy.rollout.backend import Release
from deploy.rollout.live import View
from tests.unit.test_rollout_controller import Clock, FakeBackend

ROOT = Path(__file__).resolve().parents[2]


class Kill(BaseException):
    """The controller's process is gone (SIGKILL): nothing of it runs after this."""


@dataclass
class Crash:
    """Counts the crash points passed; kills at point `at` (0: never)."""

    at: int = 0
    seen: list[str] = field(default_factory=list)

    def point(self, where: str) -> None:
        self.seen.append(where)
        if len(self.seen) == self.at:
            raise Kill(where)


class Crashing:
    """The backend with a crash point before and after every action that changes the
    world; observations pass through."""

    ACTIONS = ("start", "set_weights", "drain", "stop")

    def __init__(self, inner: FakeBackend, crash: Crash) -> None:
        self.inner = inner
        self.crash = crash

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name not in self.ACTIONS:
            return real

        def act(*args: Any, **kwargs: Any) -> Any:
            self.crash.point(f"before {name}{args[:1]}")
            result = real(*args, **kwargs)
            self.crash.point(f"after {name}{args[:1]}")
            return result

        return act


@pytest.fixture
def crash_saves(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Crash]]:
    """Every state.save is followed by a crash point of the current Crash."""
    current: list[Crash] = []
    real = state.save

    def save(folder: Path, st: state.RolloutState) -> None:
        real(folder, st)
        if current:
            current[0].point(f"saved {st.phase} {st.intent.get('action', '')}".rstrip())

    monkeypatch.setattr(state, "save", save)
    yield current


SCENARIOS = {
    # name: (old colour serving before, new colour's error rate)
    "healthy": ("blue", 0.0),
    "faulty": ("blue", 0.3),
    "first-healthy": ("", 0.0),
    "first-faulty": ("", 0.3),
}


def world(root: Path, scenario: str) -> tuple[flow.Parts, FakeBackend, Clock]:
    old, error_rate = SCENARIOS[scenario]
    env = {
        "CIPIPE_OUTPUT_DIR": str(root / "out"),
        "CIPIPE_HISTORY__PATH": str(root.parent / "history.sqlite3"),  # one store: faster
        "CIPIPE_PRODUCTION__STATE_DIR": str(root / "state"),
        "CIPIPE_PRODUCTION__BAKE": "30",
        "CIPIPE_PRODUCTION__FINAL_WATCH": "30",
        "CIPIPE_PRODUCTION__ERROR_WINDOW": "20",
        "CIPIPE_PRODUCTION__P99_WINDOW": "30",
        "CIPIPE_PRODUCTION__SAMPLE_INTERVAL": "5",
        "CIPIPE_PRODUCTION__HEALTH_INTERVAL": "5",
    }
    settings = load(ROOT, env)
    cfg = config.load(settings)
    clock = Clock()
    fake = FakeBackend(
        clock,
        error_rate={"blue" if not old else "green": error_rate},  # the new colour's
        weights_now={"blue": 100 if old else 0, "green": 0},
        running={"blue": bool(old), "green": False},
    )
    parts = flow.Parts(
        settings=settings,
        cfg=cfg,
        runner=Runner(echo=False),
        backend=fake,
        log=DeploymentLog(settings, cfg.environment, print),
        github=None,
        notifier=notify.NoNotifier(),
        view=View(cfg.thresholds, lambda s: None, rich=False),
        clock=clock,
        sleep=clock.sleep,
    )
    return parts, fake, clock


def run_once(
    root: Path, scenario: str, crash: Crash, saves: list[Crash], again: Crash | None = None
) -> tuple[FakeBackend, str | None]:
    """Start the rollout, killed at `crash.at`; then a new run finishes it (itself
    killed at `again.at` first, when given: a third run then finishes it)."""
    parts, fake, _ = world(root, scenario)
    old = SCENARIOS[scenario][0]
    parts.backend = Crashing(fake, crash)
    saves[:] = [crash]
    first = flow.Flow(parts)
    first.open_record("2.0.0", "sha256:" + "a" * 64, "rollout")
    st = flow.new_state(
        "2.0.0", "img", old, "1.0.0" if old else "", (10, 50, 100), first.dep_id, None
    )
    with contextlib.suppress(Kill):
        first.run(st, Release("2.0.0", "img"))
    if again is not None:
        parts.backend = Crashing(fake, again)
        saves[:] = [again]
        with contextlib.suppress(Kill):
            flow.Flow(parts).recover_previous()
    saves[:] = []
    parts.backend = fake
    flow.Flow(parts).recover_previous()
    return fake, first.dep_id


def check(root: Path, scenario: str, run: tuple[FakeBackend, str | None], where: str) -> str:
    """The invariants; the outcome recorded."""
    fake, dep_id = run
    assert not fake.violations, (where, fake.violations)
    serving = [c for c, w in fake.weights_now.items() if w > 0]
    history = str(root.parent / "history.sqlite3")
    with open_store(load(ROOT, {"CIPIPE_HISTORY__PATH": history})) as s:
        deps = [d for d in s.deployments("production") if d.id == dep_id]
    assert len(deps) == 1, where
    dep = deps[0]
    assert dep.ended_at is not None, (where, dep)
    st = state.load(root / "state")
    assert st is not None and not st.active and st.recorded, (where, st and st.phase)
    old = SCENARIOS[scenario][0]
    if serving:
        assert len(serving) == 1 and fake.weights_now[serving[0]] == 100, (where, fake.weights_now)
        assert fake.running[serving[0]], where
        assert not fake.running[state_other(serving[0])], (where, fake.running)
    if serving == [st.new]:
        assert dep.outcome == "succeeded" and st.phase == "done", (where, dep.outcome)
    else:
        assert dep.outcome == ("rolled_back" if old else "failed"), (where, dep.outcome)
        assert st.phase == "rolled_back" and not fake.running[st.new], where
        assert serving == ([old] if old else []), (where, serving)
    return dep.outcome


def state_other(colour: str) -> str:
    return "green" if colour == "blue" else "blue"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_kill_at_every_point_ends_consistent(
    tmp_path: Path, scenario: str, crash_saves: list[Crash]
) -> None:
    counted = Crash()
    got = run_once(tmp_path / "0", scenario, counted, crash_saves)
    expected = check(tmp_path / "0", scenario, got, "uninterrupted")
    old, error_rate = SCENARIOS[scenario]
    assert expected == ("succeeded" if not error_rate else "rolled_back" if old else "failed")
    total = len(counted.seen)
    assert total >= 15, counted.seen  # every step's intent, action and record
    outcomes: dict[str, int] = {}
    for n in range(1, total + 1):
        root = tmp_path / str(n)
        crash = Crash(at=n)
        result = check(
            root,
            scenario,
            run_once(root, scenario, crash, crash_saves),
            f"killed at {n}/{total}: {counted.seen[n - 1]}",
        )
        outcomes[result] = outcomes.get(result, 0) + 1
    print(f"{scenario}: {total} crash points, outcomes after recovery {outcomes}")


@pytest.mark.parametrize(
    ("first_kill", "nth"), [("after set_weights", 1), ("saved stopping_old", 0)]
)
def test_a_kill_during_the_recovery_is_recovered_too(
    tmp_path: Path, first_kill: str, nth: int, crash_saves: list[Crash]
) -> None:
    # where the first run dies: right after the 50% step's switch (recovery rolls
    # back), or once the decision to stop the old colour is recorded (forward)
    counted = Crash()
    run_once(tmp_path / "0", "healthy", counted, crash_saves)
    n = [i for i, w in enumerate(counted.seen, 1) if w.startswith(first_kill)][nth]
    probe = Crash()
    run_once(tmp_path / "probe", "healthy", Crash(at=n), crash_saves, again=probe)
    total = len(probe.seen)
    assert total >= 5, probe.seen
    for m in range(1, total + 1):
        root = tmp_path / f"{n}-{m}"
        got = run_once(root, "healthy", Crash(at=n), crash_saves, again=Crash(at=m))
        check(root, "healthy", got, f"killed at {n}, then its recovery at {m}/{total}")
    print(f"{first_kill}: recovery killed at each of its {total} points")
