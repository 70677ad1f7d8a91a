"""Issue 18 on real HAProxy and containers: a colour that passes its health gate and
turns unhealthy during a bake window (the consecutive-failures trigger, for real), and
crash-point injection at a sample of the controller's points (the fast tier walks
every point on the scripted backend: tests/unit/test_rollout_crash_points.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from ci.history import open_store
from ci.runner import Runner
from deploy.rollout import flow, run, state
from deploy.rollout.haproxy_backend import SingleHost

from .production_env import Load
from .test_production import PEOPLE, V1, V2, live, prod, serving  # noqa: F401 (fixtures)


def test_a_colour_turning_unhealthy_during_a_bake_is_rolled_back(
    prod,  # noqa: F811
    docker_client,
    live,  # noqa: F811
) -> None:
    live = serving(prod, docker_client)
    version = V2 if live == "blue" else V1
    prod.approve(version, *PEOPLE)
    load = Load(prod.port, rate=100).start()
    # healthy for its gate (a few seconds after start), failing from 8 s on: inside
    # the 6 s bake windows of the 10% / 50% steps
    r = prod.invoke(
        "deploy.production", "--version", version, "--env", "TS_FAULT_UNHEALTHY_AFTER=8"
    )
    load.stop()
    assert r.returncode == 24, r.stdout + r.stderr
    st = prod.rollout_state()
    events = [e["event"] for e in st["events"]]
    gate = next(i for i, e in enumerate(events) if e.startswith("health gate passed"))
    fired = next(i for i, e in enumerate(events) if e.startswith("TRIGGER"))
    assert gate < fired and any(e.startswith("step 1/") for e in events[gate:fired])
    assert st["trigger"] == "health", st["reason"]
    assert "3 consecutive /health failures" in st["reason"] and "503" in st["reason"]
    assert st["step"] >= 0  # during a bake, with traffic on it
    assert serving(prod, docker_client) == live


class Kill(BaseException):
    """The controller's process is gone."""


class Crashing:
    """SingleHost with a crash point before and after every action, and a check that
    no colour is stopped while HAProxy gives it weight."""

    def __init__(self, inner: SingleHost, kill_at: int) -> None:
        self.inner, self.kill_at = inner, kill_at
        self.seen: list[str] = []
        self.violations: list[str] = []

    def point(self, where: str) -> None:
        self.seen.append(where)
        if len(self.seen) == self.kill_at:
            raise Kill(where)

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name not in ("start", "set_weights", "drain", "stop"):
            return real

        def act(*args: Any, **kwargs: Any) -> Any:
            self.point(f"before {name}{args[:1]}")
            if name == "stop":
                weight = self.inner.runtime.weight(args[0])
                if weight > 0:
                    self.violations.append(f"{args[0]} stopped with weight {weight}")
            result = real(*args, **kwargs)
            self.point(f"after {name}{args[:1]}")
            return result

        return act


@pytest.fixture
def crash_saves(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Crashing]]:
    """A crash point after every save of the rollout state."""
    current: list[Crashing] = []
    real = state.save

    def save(folder: Any, st: state.RolloutState) -> None:
        real(folder, st)
        if current:
            current[0].point(f"saved {st.phase}")

    monkeypatch.setattr(state, "save", save)
    yield current


def killed_rollout(
    prod,  # noqa: F811
    version: str,
    kill_at: int,
    saves: list[Crashing],
) -> tuple[Crashing, str | None]:
    """A rollout of `version` in this process, killed at point `kill_at` (0: never);
    then a new run finishes it, as `invoke deploy.production` does first. The crash
    points seen and the deployment record's id."""
    settings = prod.settings()
    with Runner(echo=False) as runner:
        p = run.parts(settings, runner)
        assert isinstance(p.backend, SingleHost)
        crashing = Crashing(p.backend, kill_at)
        p.backend = crashing  # type: ignore[assignment]
        saves[:] = [crashing]
        f = flow.Flow(p)
        digest, image = run.resolve(settings, p.cfg, version)
        live, live_version = f.live_colour()
        f.open_record(version, digest, "rollout")
        st = flow.new_state(version, image, live, live_version, p.cfg.steps, f.dep_id, None)
        with contextlib.suppress(Kill):
            f.run(st, f.release(version, image, "", {}))
        saves[:] = []
        p.backend = crashing.inner
        flow.Flow(p).recover_previous()
        p.view.close()
    return crashing, f.dep_id


def test_a_sample_of_crash_points_on_real_haproxy(
    prod,  # noqa: F811
    docker_client,
    live,  # noqa: F811
    crash_saves: list[Crashing],
) -> None:
    load = Load(prod.port, rate=150, max_seconds=900).start()
    try:
        live = serving(prod, docker_client)
        counted, _ = killed_rollout(prod, V2 if live == "blue" else V1, 0, crash_saves)
        assert not counted.violations
        total = len(counted.seen)
        assert total >= 15, counted.seen
        picks = sorted({max(1, total * k // 6) for k in range(1, 6)} | {total - 1})
        for n in picks:
            live = serving(prod, docker_client)
            new = "green" if live == "blue" else "blue"
            version = V2 if live == "blue" else V1
            got, dep_id = killed_rollout(prod, version, n, crash_saves)
            hit = got.seen[n - 1] if len(got.seen) >= n else "not reached"
            where = (
                f"killed at {n}/{total} ({hit}; in the uninterrupted run: {counted.seen[n - 1]})"
            )
            assert not got.violations, (where, got.violations)
            now = serving(prod, docker_client)  # exactly one colour, 100%, the other stopped
            with open_store(prod.settings()) as store:
                dep = next(d for d in store.deployments("production") if d.id == dep_id)
            st = prod.rollout_state()
            assert dep.ended_at is not None and st["recorded"], where
            if now == new:
                assert dep.outcome == "succeeded" and st["phase"] == "done", (where, dep.outcome)
            else:
                assert dep.outcome == "rolled_back" and st["phase"] == "rolled_back", where
            print(f"{where}: {dep.outcome} ({st['trigger'] or 'no trigger'}), {now} serves")
    finally:
        load.stop()
    assert load.hits, "no traffic was sent"
