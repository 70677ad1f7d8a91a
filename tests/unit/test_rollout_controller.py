"""The controller on a scripted backend and a fake clock: the order of the steps, the
rollback order (traffic first, then the stop), holds on no data, manual triggers,
recovery of a killed controller's state, and the k8s backend's kubectl calls."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from ci.settings import load
from deploy.health import Probe
from deploy.rollout import analysis, config, state
from deploy.rollout.backend import ColourState, Release
from deploy.rollout.controller import Controller
from deploy.rollout.haproxy import ProxyError
from deploy.rollout.live import View
from deploy.rollout.metrics import Counters
from deploy.rollout.state import RolloutState


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


@dataclass
class FakeBackend:
    """Each colour serves `rps * weight%` requests a second with `error_rate[colour]`."""

    clock: Clock
    rps: float = 200
    error_rate: dict[str, float] = field(default_factory=dict)
    unhealthy: set[str] = field(default_factory=set)
    weights_now: dict[str, int] = field(default_factory=lambda: {"blue": 100, "green": 0})
    calls: list[tuple] = field(default_factory=list)
    served: dict[str, float] = field(default_factory=lambda: {"blue": 0.0, "green": 0.0})
    failed: dict[str, float] = field(default_factory=lambda: {"blue": 0.0, "green": 0.0})
    last: float = 0.0
    running: dict[str, bool] = field(default_factory=lambda: {"blue": True, "green": False})
    proxy_down: bool = False  # the runtime API does not answer (like Runtime.command)
    violations: list[str] = field(default_factory=list)  # a colour stopped with traffic

    def _proxy(self) -> None:
        if self.proxy_down:
            raise ProxyError("HAProxy's runtime API does not answer (ConnectionRefusedError)")

    def _advance(self) -> None:
        dt = self.clock.now - self.last
        self.last = self.clock.now
        for c, w in self.weights_now.items():
            n = self.rps * w / 100 * dt
            self.served[c] += n
            self.failed[c] += n * self.error_rate.get(c, 0.0)

    def describe(self) -> str:
        return "fake"

    def check(self) -> None:
        self.calls.append(("check",))

    def colours(self) -> dict[str, ColourState]:
        self._proxy()
        return {c: ColourState(c, self.running[c], "", "", w) for c, w in self.weights_now.items()}

    def start(self, colour: str, release: Release) -> None:
        self.calls.append(("start", colour, release.version))
        self.running[colour] = True

    def set_weights(self, weights: dict[str, int]) -> None:
        self._advance()
        self._proxy()
        self.calls.append(("weights", dict(weights)))
        self.weights_now = dict(weights)

    def drain(self, colour: str, timeout: float) -> int:
        self.calls.append(("drain", colour))
        return 0

    def stop(self, colour: str, timeout: float) -> None:
        self.calls.append(("stop", colour))
        if self.weights_now.get(colour, 0) > 0 and not self.proxy_down:
            self.violations.append(f"{colour} stopped with {self.weights_now[colour]}%")
        self.running[colour] = False

    def health(self, colour: str, timeout: float) -> Probe:
        if not self.running[colour]:
            return Probe(0, "connection refused")
        return Probe(503, "503 (fault injected)") if colour in self.unhealthy else Probe(200, "ok")

    def counters(self, colour: str, at: float, timeout: float) -> Counters:
        self._advance()
        n = self.served[colour]
        return Counters(
            at=at,
            requests=n,
            errors=self.failed[colour],
            buckets=((0.001, n * 0.5), (0.005, n), (float("inf"), n)),
            latency_sum=n * 0.0015,
        )

    def logs(self, colour: str, lines: int) -> str:
        return f"{colour} log line\n"

    def raw_metrics(self, colour: str, timeout: float) -> str:
        return "metrics"


def cfg(tmp_path: Path, **over: str) -> config.ProductionConfig:
    env = {
        "CIPIPE_PRODUCTION__STATE_DIR": str(tmp_path),
        "CIPIPE_PRODUCTION__BAKE": "60",
        "CIPIPE_PRODUCTION__FINAL_WATCH": "120",
        "CIPIPE_PRODUCTION__ERROR_WINDOW": "20",
        "CIPIPE_PRODUCTION__P99_WINDOW": "60",
        "CIPIPE_PRODUCTION__SAMPLE_INTERVAL": "5",
        "CIPIPE_PRODUCTION__HEALTH_INTERVAL": "5",
    }
    env.update({f"CIPIPE_PRODUCTION__{k.upper()}": v for k, v in over.items()})
    return config.load(load(Path(__file__).resolve().parents[2], env))


def run(
    tmp_path: Path,
    backend: FakeBackend,
    clock: Clock,
    c: config.ProductionConfig,
    st: RolloutState | None = None,
) -> tuple[Any, RolloutState, Controller]:
    st = st or RolloutState(
        id="r1",
        version="2.0.0",
        image="img",
        new="green",
        old="blue",
        old_version="1.0.0",
        steps=list(c.steps),
    )
    ctl = Controller(
        c,
        backend,
        View(c.thresholds, lambda s: None, rich=False),
        lambda s: None,
        lambda s: state.save(tmp_path, s),
        clock=clock,
        sleep=clock.sleep,
    )
    return ctl.deploy(st, Release("2.0.0", "img")), st, ctl


def test_healthy_rollout_walks_every_step_then_stops_the_old_colour(tmp_path: Path) -> None:
    clock = Clock()
    backend = FakeBackend(clock)
    out, st, _ = run(tmp_path, backend, clock, cfg(tmp_path))
    assert out.ok and st.phase == "done"
    weights = [c[1]["green"] for c in backend.calls if c[0] == "weights"]
    # the last 100: re-asserted (idempotent) and read back before the old colour stops
    assert weights == [10, 50, 100, 100]
    assert backend.calls[-2:] == [("drain", "blue"), ("stop", "blue")]
    assert clock.now >= 3 * 60 + 120  # three bakes and the final watch
    assert state.load(tmp_path).phase == "done"


def test_errors_roll_back_with_traffic_moved_before_the_stop(tmp_path: Path) -> None:
    clock = Clock()
    backend = FakeBackend(clock, error_rate={"green": 0.2})
    out, st, _ = run(tmp_path, backend, clock, cfg(tmp_path))
    assert not out.ok and out.breach.trigger == analysis.ERROR_RATE
    assert st.step == 0 and st.phase == "rolled_back"
    i_back = backend.calls.index(("weights", {"green": 0, "blue": 100}))
    assert i_back < backend.calls.index(("stop", "green"))
    assert ("stop", "blue") not in backend.calls
    assert out.recovery_s is not None and out.recovery_s < 2
    assert out.logs == "green log line\n"
    assert 20 <= clock.now < 40  # fired once the 20 s window was full


def test_unhealthy_new_colour_fails_the_gate_without_traffic(tmp_path: Path) -> None:
    clock = Clock()
    backend = FakeBackend(clock, unhealthy={"green"})
    out, _, _ = run(tmp_path, backend, clock, cfg(tmp_path, health_timeout="5"))
    assert out.breach.trigger == analysis.HEALTH and "health gate" in out.breach.detail
    assert not [c for c in backend.calls if c[0] == "weights" and c[1]["green"] > 0]
    assert ("stop", "green") in backend.calls


def test_no_traffic_holds_then_rolls_back(tmp_path: Path) -> None:
    clock = Clock()
    backend = FakeBackend(clock, rps=0)
    out, st, _ = run(tmp_path, backend, clock, cfg(tmp_path, hold_max="30"))
    assert out.breach.trigger == analysis.INCONCLUSIVE
    assert 90 <= clock.now < 100  # bake 60 s, then held 30 s: never promoted
    assert any("holding" in e["event"] for e in st.events)


def test_manual_trigger(tmp_path: Path) -> None:
    clock = Clock()
    backend = FakeBackend(clock)
    c = cfg(tmp_path)
    asked = iter([None, None, "alice"])
    st = RolloutState(
        id="r1", version="2.0.0", image="img", new="green", old="blue", steps=list(c.steps)
    )
    ctl = Controller(
        c,
        backend,
        View(c.thresholds, lambda s: None, rich=False),
        lambda s: None,
        lambda s: state.save(tmp_path, s),
        clock=clock,
        sleep=clock.sleep,
        manual=lambda: next(asked, None),
    )
    out = ctl.deploy(st, Release("2.0.0", "img"))
    assert out.breach.trigger == analysis.MANUAL and "alice" in out.breach.detail


def test_recovery_of_a_killed_controller() -> None:
    base = RolloutState(id="x", version="2", image="i", new="green", old="blue")
    assert state.recovery(None) == "none"
    assert state.recovery(replace(base, phase="done")) == "none"
    assert state.recovery(replace(base, phase="shifting", step=1)) == "rollback"
    assert state.recovery(replace(base, phase="new_up")) == "rollback"
    assert state.recovery(replace(base, phase="rolling_back")) == "rollback"
    # a recorded trigger is finished backwards, whatever the phase says
    assert state.recovery(replace(base, phase="shifting", trigger="health")) == "rollback"
    up = {c: ColourState(c, True) for c in ("blue", "green")}
    green_down = {**up, "green": ColourState("green", False)}
    none_up = {c: ColourState(c, False) for c in ("blue", "green")}
    assert state.recovery(replace(base, phase="watching"), up) == "watch"
    assert state.recovery(replace(base, phase="watching"), green_down) == "rollback"
    assert state.recovery(replace(base, phase="stopping_old"), up) == "forward"
    assert state.recovery(replace(base, phase="stopping_old"), green_down) == "rollback"
    assert state.recovery(replace(base, phase="stopping_old"), none_up) == "stuck"


def test_state_round_trips_and_the_lock_excludes_a_second_controller(tmp_path: Path) -> None:
    st = RolloutState(
        id="x",
        version="2",
        image="i",
        new="green",
        old="blue",
        step=1,
        weights={"green": 50, "blue": 50},
    )
    state.save(tmp_path, st)
    assert state.load(tmp_path) == st
    with (
        state.locked(tmp_path),
        pytest.raises(state.PreconditionFailed, match="another production rollout"),
        state.locked(tmp_path),
    ):
        pass
    with state.locked(tmp_path):
        pass


def test_steps_are_checked() -> None:
    assert config.parse_steps("10, 50,100") == (10, 50, 100)
    for bad in ([50, 10, 100], [10, 50], [0, 100], "ten"):
        with pytest.raises(config.PreconditionFailed):
            config.parse_steps(bad)


def test_time_scale_shrinks_every_window(tmp_path: Path) -> None:
    c = config.load(
        load(Path(__file__).resolve().parents[2], {"CIPIPE_PRODUCTION__TIME_SCALE": "0.01"})
    )
    assert c.bake == pytest.approx(3) and c.final_watch == pytest.approx(18)
    assert c.thresholds.error_window == pytest.approx(1.2)
    assert c.thresholds.p99_window == pytest.approx(3)
    d = config.load(load(Path(__file__).resolve().parents[2], {}))
    assert (d.steps, d.bake, d.final_watch) == ((10, 50, 100), 300, 1800)
    th = d.thresholds
    assert (th.error_rate, th.error_window, th.p99_ms, th.p99_window, th.health_failures) == (
        0.05,
        120,
        50,
        300,
        3,
    )
    assert (th.alert_error_rate, th.alert_p99_ms) == (0.01, 10)


def test_incident_report_names_the_trigger_and_carries_a_checklist(tmp_path: Path) -> None:
    from deploy.rollout import incident

    clock = Clock()
    backend = FakeBackend(clock, error_rate={"green": 0.3})
    out, st, ctl = run(tmp_path, backend, clock, cfg(tmp_path))
    _, text = incident.write(
        tmp_path / "inc",
        st,
        ctl.samples,
        out.logs,
        out.raw_metrics,
        out.recovery_s,
        ctl.alerts,
        lambda s: s,
    )
    assert "error-rate" in text and "Post-mortem checklist" in text and "green log line" in text
    data = json.loads((tmp_path / "inc" / "report.json").read_text())
    assert data["trigger"] == "error-rate" and data["timeline"]
    assert (tmp_path / "inc" / "green.metrics.txt").exists()
