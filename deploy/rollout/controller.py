"""The rollout controller: the same steps whatever backend carries the traffic.

    start the new colour (0%) -> health gate -> for each step: set the weights, bake
    (sample, analyse; hold while inconclusive) -> final watch at 100% with the old
    colour still up -> drain and stop the old colour.

Any trigger, an error, or Ctrl-C: `rollback` puts ALL traffic on the old colour first
(one runtime-API call per server), then preserves the new colour's logs and metrics,
drains and stops it. The state is saved after every change (state.py), so a killed
controller's successor finishes the job (`recover`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from ci.interrupts import shield
from deploy.health import Health, wait_healthy
from deploy.rollout import analysis
from deploy.rollout.analysis import Breach
from deploy.rollout.backend import Backend, Release
from deploy.rollout.config import ProductionConfig, Thresholds
from deploy.rollout.live import Status, View
from deploy.rollout.metrics import Counters, Sample, sample
from deploy.rollout.state import RolloutState


@dataclass
class Outcome:
    """How a rollout ended."""

    ok: bool
    breach: Breach | None = None
    recovery_s: float | None = None  # trigger -> all traffic on the old colour
    recovered_at: datetime | None = None
    logs: str = ""
    raw_metrics: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


class Controller:
    """Drives one rollout over a backend."""

    def __init__(
        self,
        cfg: ProductionConfig,
        backend: Backend,
        view: View,
        say: Callable[[str], None],
        save: Callable[[RolloutState], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        manual: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.cfg = cfg
        self.th = cfg.thresholds
        self.backend = backend
        self.view = view
        self.say = say
        self._save = save
        self.clock = clock
        self.sleep = sleep
        self.manual = manual
        self.t0 = clock()
        self.samples: dict[str, list[Sample]] = {"blue": [], "green": []}
        self.prev: dict[str, Counters] = {}
        self.probes: list[tuple[bool, str]] = []
        self.alerts: list[str] = []
        self.traffic_since: float | None = None

    # ---- bookkeeping -----------------------------------------------------------------
    def event(self, state: RolloutState, text: str, *, quiet: bool = False) -> None:
        """Add to the timeline, save, say."""
        now = datetime.now(UTC)
        state.events.append(
            {
                "t": round(self.clock() - self.t0, 3),
                "at": now.strftime("%H:%M:%S.%f")[:-3],
                "event": text,
            }
        )
        self._save(state)
        if not quiet:
            self.say(text)

    def weights(self, state: RolloutState, new_pct: int) -> None:
        """Set new/old to new_pct/100-new_pct and record it."""
        w = {state.new: new_pct}
        if state.old:
            w[state.old] = 100 - new_pct
        else:
            w[_other(state.new)] = 0
        self.backend.set_weights(w)
        state.weights = w

    # ---- the rollout -----------------------------------------------------------------
    def deploy(self, state: RolloutState, release: Release) -> Outcome:
        """Run the rollout from `state` (phase started); roll back on any trigger."""
        try:
            return self._deploy(state, release)
        except KeyboardInterrupt:
            return self.rollback(
                state,
                Breach(analysis.INTERRUPTED, "interrupted (Ctrl-C / SIGTERM)"),
                interrupted=True,
            )
        except Exception as err:
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            self.rollback(state, Breach("error", reason))
            raise

    def _start_new(self, state: RolloutState, release: Release, note: str = "") -> Health:
        """Start `release` on the idle colour and wait for its health gate."""
        self.backend.start(state.new, release)
        state.phase = "new_up"
        self.event(state, f"{state.new} started with {state.version}{note}")
        return wait_healthy(
            lambda: self.backend.health(state.new, self.cfg.request_timeout),
            timeout=self.cfg.health_timeout,
            clock=self.clock,
            sleep=self.sleep,
        )

    def _deploy(self, state: RolloutState, release: Release) -> Outcome:
        health = self._start_new(state, release, " (no traffic yet)")
        if not health.healthy:
            return self.rollback(state, Breach(analysis.HEALTH, f"health gate: {health.reason}"))
        self.event(state, f"health gate passed: {state.new} {health.describe()}")
        if not state.old:
            return self.first(state)
        n = len(state.steps)
        for i, pct in enumerate(state.steps):
            state.step, state.phase = i, "shifting"
            t_switch = self.clock()
            self.weights(state, pct)
            if self.traffic_since is None:
                self.traffic_since = t_switch
            self.event(
                state,
                f"step {i + 1}/{n}: {state.new} {pct}%, {state.old} {100 - pct}% "
                f"(switched in {1000 * (self.clock() - t_switch):.1f} ms)",
            )
            breach = self.watch(state, self.cfg.bake, f"step {i + 1}/{n} ({pct}%)", judge=True)
            if breach is not None:
                return self.rollback(state, breach)
            self.event(state, f"step {i + 1} passed: {pct}% on {state.new}")
        state.phase = "watching"
        self.event(
            state,
            f"final watch: {self.cfg.final_watch:g}s at 100% with "
            f"{state.old or 'no old colour'} still up",
        )
        breach = self.watch(state, self.cfg.final_watch, "final watch", judge=False)
        if breach is not None:
            return self.rollback(state, breach)
        self.finish_forward(state)
        return Outcome(ok=True)

    def first(self, state: RolloutState) -> Outcome:
        """The very first deployment: no old colour to compare with or go back to, and
        usually no traffic yet: all of it at once, then the final watch with the
        triggers armed (no hold on no data: there is nothing to hold for)."""
        state.step, state.phase = 0, "watching"
        self.weights(state, 100)
        self.traffic_since = self.clock()
        self.event(
            state,
            f"first deployment: {state.new} 100%; final watch {self.cfg.final_watch:g}s",
        )
        breach = self.watch(
            state, self.cfg.final_watch, "final watch", judge=False, need_data=False
        )
        if breach is not None:
            return self.rollback(state, breach)
        self.finish_forward(state)
        return Outcome(ok=True)

    def finish_forward(self, state: RolloutState) -> None:
        """The new colour has passed: drain and stop the old one; done."""
        state.phase = "stopping_old"
        self.event(state, f"{state.version} passed every step; stopping {state.old or '-'}")
        if state.old:
            with shield():
                left = self.backend.drain(state.old, self.cfg.drain_timeout)
                if left:
                    self.say(
                        f"{state.old}: {left} connection(s) still open after "
                        f"{self.cfg.drain_timeout:g}s; stopping anyway"
                    )
                self.backend.stop(state.old, self.cfg.stop_timeout)
        state.phase = "done"
        self.event(state, f"done: {state.new} serves 100% with {state.version}")

    # ---- watching --------------------------------------------------------------------
    def _scrape(self, state: RolloutState, now: float) -> None:
        for colour in (state.new, state.old):
            if not colour:
                continue
            cur = self.backend.counters(colour, now, self.cfg.request_timeout)
            if cur is None:
                cur = Counters(at=now)
            prev = self.prev.get(colour)
            self.prev[colour] = cur
            if prev is not None and self.traffic_since is not None:
                self.samples[colour].append(sample(prev, cur))

    def watch(
        self,
        state: RolloutState,
        duration: float,
        label: str,
        *,
        judge: bool,
        need_data: bool = True,
    ) -> Breach | None:
        """Sample both colours and probe the new one's health for `duration`; a trigger
        ends it early. At the end: judged (`judge`: the relative check too); an
        inconclusive window holds up to `hold_max`, then is a breach."""
        start = self.clock()
        end, hold_end = start + duration, start + duration + self.cfg.hold_max
        next_sample = next_health = start
        holding = ""
        if state.new not in self.prev:
            self._scrape(state, start)
        while True:
            now = self.clock()
            if now >= next_health:
                next_health = now + self.cfg.health_interval
                probe = self.backend.health(state.new, self.cfg.request_timeout)
                self.probes.append((probe.healthy, probe.detail))
                breach = analysis.health_breach(self.probes, self.th.health_failures)
                if breach is not None:
                    return breach
            if now >= next_sample:
                who = self.manual()
                if who is not None:
                    return Breach(analysis.MANUAL, f"manual rollback requested by {who}")
                next_sample = now + self.cfg.sample_interval
                self._scrape(state, now)
                new = self.samples[state.new]
                if new:
                    for text in analysis.alerts(new[-1], self.th):
                        self.alerts.append(f"{now - self.t0:.1f}s {state.new}: {text}")
                breach = analysis.triggers(
                    new,
                    now=now,
                    since=now if self.traffic_since is None else self.traffic_since,
                    th=self.th,
                )
                if breach is not None:
                    return breach
                self.show(state, label, end - now, holding)
            if now >= end and not need_data:
                return None
            if now >= end:
                window = [s for s in self.samples[state.new] if s.at >= start]
                old = [s for s in self.samples.get(state.old, []) if s.at >= start]
                th = self.th if judge else _no_relative(self.th)
                verdict = analysis.judge(window, old, th, state.weights.get(state.new, 100))
                if verdict.outcome == "promote":
                    return None
                if verdict.outcome == "abort":
                    return Breach(verdict.trigger, verdict.detail)
                if not holding:
                    holding = verdict.detail
                    self.event(state, f"{label}: {verdict.detail}")
                if now >= hold_end:
                    detail = verdict.detail.removeprefix("inconclusive: ")
                    return Breach(analysis.INCONCLUSIVE, f"{detail}; held {self.cfg.hold_max:g}s")
            self.sleep(
                max(
                    0.01,
                    min(next_sample, next_health, end if now < end else next_sample) - self.clock(),
                )
            )

    def show(self, state: RolloutState, label: str, left: float, note: str) -> None:
        """Update the live view."""
        latest = {
            c: (self.samples[c][-1] if self.samples.get(c) else None)
            for c in (state.new, state.old)
            if c
        }
        versions = {state.new: state.version}
        if state.old:
            versions[state.old] = state.old_version
        self.view.update(
            Status(
                label,
                dict(state.weights),
                state.new,
                latest,
                versions,
                left,
                "HOLD: inconclusive" if note else "",
            )
        )

    # ---- rolling back ----------------------------------------------------------------
    def rollback(
        self, state: RolloutState, breach: Breach, *, interrupted: bool = False
    ) -> Outcome:
        """All traffic to the old colour FIRST, then keep the new colour's evidence,
        drain and stop it. Signals are deferred until it is done."""
        with shield():
            t_trigger = self.clock()
            recovery: float | None = None
            recovered_at = None
            if state.step >= 0:
                self.weights(state, 0)  # the old colour takes it all (first time: nobody)
                if state.old:
                    recovery = self.clock() - t_trigger
                    recovered_at = datetime.now(UTC)
            state.phase, state.trigger, state.reason = "rolling_back", breach.trigger, breach.detail
            self.event(state, f"TRIGGER {breach.trigger}: {breach.detail}")
            if recovery is not None:
                self.event(
                    state,
                    f"all traffic on {state.old} ({state.old_version}) "
                    f"{recovery * 1000:.1f} ms after the trigger",
                )
            logs = self.backend.logs(state.new, self.cfg.log_lines)
            raw = {state.new: self.backend.raw_metrics(state.new, self.cfg.request_timeout)}
            if state.old:
                raw[state.old] = self.backend.raw_metrics(state.old, self.cfg.request_timeout)
            self.backend.drain(state.new, min(self.cfg.drain_timeout, 5.0))
            self.backend.stop(state.new, self.cfg.stop_timeout)
            state.phase = "rolled_back"
            self.event(
                state,
                f"{state.new} stopped; {state.old or 'nothing'} serves "
                f"{state.old_version or ''}".rstrip(),
            )
        return Outcome(False, breach, recovery, recovered_at, logs, raw, interrupted)

    def switch(self, state: RolloutState, release: Release) -> Outcome:
        """An emergency switch (`invoke rollback --to V`): start `release` on the idle
        colour, health gate, ALL traffic at once, stop the other colour."""
        health = self._start_new(state, release)
        if not health.healthy:
            self.backend.stop(state.new, self.cfg.stop_timeout)
            state.phase = "rolled_back"
            self.event(state, f"health gate failed: {health.reason}; {state.new} stopped")
            return Outcome(False, Breach(analysis.HEALTH, f"health gate: {health.reason}"))
        state.step, state.phase = 0, "watching"
        t_switch = self.clock()
        self.weights(state, 100)
        self.event(
            state, f"all traffic on {state.new} in {1000 * (self.clock() - t_switch):.1f} ms"
        )
        self.finish_forward(state)
        return Outcome(ok=True)

    def recover(self, state: RolloutState, how: str) -> Outcome:
        """Finish a rollout a killed controller left: forward or back."""
        if how == "forward":
            self.finish_forward(state)
            return Outcome(ok=True)
        return self.rollback(
            state, Breach(analysis.CONTROLLER_LOST, f"the controller stopped during {state.phase}")
        )


def _other(colour: str) -> str:
    return "green" if colour == "blue" else "blue"


def _no_relative(th: Thresholds) -> Thresholds:
    return replace(th, relative=False)
