"""Issue 18, section 2: a controller killed at any point ends consistent, the colour
that serves traffic is never stopped, and every rollback closes its record. Each test
drives the controller on the scripted backend and fake clock of
test_rollout_controller.py, as the findings were reproduced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.errors import DeployError
from deploy.rollout import analysis, flow, state
from deploy.rollout.backend import Release
from deploy.rollout.controller import Controller
from deploy.rollout.haproxy import ProxyError
from deploy.rollout.live import View
from deploy.rollout.state import RolloutState
from tests.unit.test_rollout_controller import Clock, FakeBackend, cfg


class Kill(BaseException):
    """SIGKILL of the controller: nothing after it runs (no except, no finally of ours
    catches a BaseException that is not KeyboardInterrupt)."""


def controller(tmp_path: Path, backend: Any, clock: Clock, **over: Any) -> Controller:
    c = over.pop("config", None) or cfg(tmp_path)
    return Controller(
        c,
        backend,
        View(c.thresholds, lambda s: None, rich=False),
        lambda s: None,
        over.pop("save", lambda s: state.save(tmp_path, s)),
        clock=clock,
        sleep=clock.sleep,
        manual=over.pop("manual", lambda: None),
    )


def rollout(c: Any, *, old: str = "blue", rid: str = "r1") -> RolloutState:
    return RolloutState(
        id=rid,
        version="2.0.0",
        image="img",
        new="green",
        old=old,
        old_version="1.0.0" if old else "",
        steps=list(c.steps),
    )


def serving(backend: FakeBackend) -> list[str]:
    """Colours taking traffic (weight > 0) that run."""
    return [c for c, w in backend.weights_now.items() if w > 0 and backend.running[c]]


def test_a_first_deployment_killed_while_rolling_back_is_not_recovered_forward(
    tmp_path: Path,
) -> None:
    clock = Clock()
    backend = FakeBackend(
        clock, weights_now={"blue": 0, "green": 100}, running={"blue": False, "green": True}
    )
    st = RolloutState(
        id="r1",
        version="2.0.0",
        image="img",
        new="green",
        old="",
        phase="rolling_back",
        step=0,
        weights={"green": 100, "blue": 0},
        steps=[10, 50, 100],
        trigger=analysis.ERROR_RATE,
        reason="error rate 20%",
    )
    out = controller(tmp_path, backend, clock).recover(st)
    assert not out.ok and out.breach is not None
    assert out.breach.trigger == analysis.ERROR_RATE  # the recorded trigger, not "lost"
    assert backend.weights_now == {"blue": 0, "green": 0}
    assert ("stop", "green") in backend.calls and not backend.violations
    assert st.phase == "rolled_back"


def test_recovering_a_watching_rollout_never_stops_the_colour_haproxy_still_feeds(
    tmp_path: Path,
) -> None:
    # killed during the final watch; `invoke deploy.proxy --start` then gave the old
    # colour 100% (its rule for an unfinished rollout): the proxy, not the state, says
    # who serves
    clock = Clock()
    backend = FakeBackend(
        clock, weights_now={"blue": 100, "green": 0}, running={"blue": True, "green": True}
    )
    st = rollout(cfg(tmp_path))
    st.phase, st.step, st.weights = "watching", 2, {"green": 100, "blue": 0}
    out = controller(tmp_path, backend, clock).recover(st)
    assert not backend.violations, backend.violations
    assert len(serving(backend)) == 1
    assert out.ok == (serving(backend) == ["green"])
    assert st.phase in ("done", "rolled_back")


def test_a_kill_between_set_weights_and_its_save_is_undone_by_recovery(tmp_path: Path) -> None:
    clock = Clock()
    backend = FakeBackend(clock)
    real = backend.set_weights

    def set_then_die(weights: dict[str, int]) -> None:
        real(weights)
        raise Kill

    backend.set_weights = set_then_die  # type: ignore[method-assign]
    c = cfg(tmp_path)
    with pytest.raises(Kill):
        controller(tmp_path, backend, clock).deploy(rollout(c), Release("2.0.0", "img"))
    assert backend.weights_now == {"green": 10, "blue": 90}
    backend.set_weights = real  # type: ignore[method-assign]
    saved = state.load(tmp_path)
    assert saved is not None
    out = controller(tmp_path, backend, clock).recover(saved)
    assert not out.ok and not backend.violations, backend.violations
    assert backend.weights_now == {"green": 0, "blue": 100}
    assert ("stop", "green") in backend.calls


def test_a_stale_abort_request_does_not_abort_the_next_rollout(tmp_path: Path) -> None:
    # `invoke rollback` asked rollout r0 to stop while it was already stopping the old
    # colour; its request must not abort r1
    flow.request_abort(tmp_path, "alice", "r0")
    clock = Clock()
    backend = FakeBackend(clock)
    ctl = controller(tmp_path, backend, clock, manual=lambda: flow.take_abort(tmp_path, "r1"))
    out = ctl.deploy(rollout(cfg(tmp_path)), Release("2.0.0", "img"))
    assert out.ok, out.breach
    assert not (tmp_path / flow.ABORT_FILE).exists()


def test_a_manual_rollback_that_came_too_late_says_so_and_fails(tmp_path: Path) -> None:
    st = rollout(cfg(tmp_path))
    st.phase = "done"
    flow.request_abort(tmp_path, "alice", st.id)
    with pytest.raises(DeployError, match="too late") as err:
        flow.abort_result(tmp_path, st)
    assert "2.0.0" in str(err.value) and "green" in str(err.value)
    assert not (tmp_path / flow.ABORT_FILE).exists()
    st.phase = "rolled_back"
    assert flow.abort_result(tmp_path, st).startswith("rolled back: blue serves 1.0.0")


def test_a_proxy_error_during_rollback_still_stops_the_faulty_colour(tmp_path: Path) -> None:
    clock = Clock()
    backend = FakeBackend(clock, error_rate={"green": 0.2})
    real = backend.set_weights

    def socket_dies_on_the_way_back(weights: dict[str, int]) -> None:
        if weights.get("green") == 0:
            backend.proxy_down = True
        real(weights)

    backend.set_weights = socket_dies_on_the_way_back  # type: ignore[method-assign]
    st = rollout(cfg(tmp_path))
    out = controller(tmp_path, backend, clock).deploy(st, Release("2.0.0", "img"))
    # an outcome (not an exception): the flow writes the incident record from it
    assert not out.ok and out.breach is not None
    assert out.breach.trigger == analysis.ERROR_RATE
    assert ("stop", "green") in backend.calls and not backend.running["green"]
    assert out.recovery_s is None  # traffic was not confirmed back on blue
    assert any("does not answer" in e["event"] for e in st.events)
    assert st.phase == "rolled_back"


class ScriptedRuntime:
    """HAProxy's runtime API whose socket dies after `answers` commands."""

    def __init__(self, answers: int) -> None:
        self.w = {"blue": 100, "green": 0}
        self.left = answers

    def _tick(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ProxyError("HAProxy's runtime API does not answer (BrokenPipeError)")

    def weight(self, server: str) -> int:
        self._tick()
        return self.w[server]

    def set_state(self, server: str, st: str) -> None:
        self._tick()

    def set_weight(self, server: str, weight: int) -> None:
        self._tick()
        self.w[server] = weight


def test_a_partial_set_weights_does_not_claim_traffic_was_unchanged(tmp_path: Path) -> None:
    from deploy.rollout.haproxy_backend import SingleHost

    host = SingleHost(cfg(tmp_path).haproxy, client=None, say=lambda s: None)
    rt = ScriptedRuntime(answers=4)  # two reads, blue lowered first, then the socket dies
    host.runtime = rt  # type: ignore[assignment]
    with pytest.raises(ProxyError) as err:
        host.set_weights({"green": 10, "blue": 90})
    assert rt.w == {"blue": 90, "green": 0}
    text = str(err.value)
    assert "not changed" not in text
    assert "blue 100 -> 90" in text and "partly" in text
