"""The rollout controller: the same steps whatever backend carries the traffic.

    start the new colour (0%) -> health gate -> for each step: set the weights, bake
    (sample, analyse; hold while inconclusive) -> final watch at 100% with the old
    colour still up (judged like a step) -> set and read back 0% on the old colour,
    drain and stop it.

Any trigger, an error, or Ctrl-C: `rollback` records the trigger, puts ALL traffic on
the old colour (read back), keeps the new colour's logs and metrics, drains and stops
it; when the traffic switch does not answer, the new colour is stopped anyway (the
proxy's health checks and redispatch move its share) and the record still written.

Write-ahead (the controller pattern of Argo Rollouts and Flagger): every external
action is recorded as the state's `intent` BEFORE it is taken, and every action is
idempotent. A controller killed at any point leaves a state from which `recover`
finishes the job, deciding from the recorded intent, the weights read back from the
proxy and the colours running (state.recovery), never from the phase name alone. No
colour is stopped until the proxy has read back weight 0 for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ci.interrupts import shield
from deploy.errors import DeployError, PreconditionFailed
from deploy.health import Health, wait_healthy
from deploy.rollout import analysis
from deploy.rollout import state as states
from deploy.rollout.analysis import Breach
from deploy.rollout.backend import Backend, ColourState, Release
from deploy.rollout.config import ProductionConfig, other
from deploy.rollout.live import View
from deploy.rollout.metrics import Sample
from deploy.rollout.state import RolloutState
from deploy.rollout.watch import Watcher


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


class StillServing(DeployError):
    """A colour about to be stopped still has traffic: it is not stopped."""

    exit_code = 25


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
        self.backend = backend
        self.say = say
        self._save = save
        self.clock = clock
        self.sleep = sleep
        self.t0 = clock()
        self.watcher = Watcher(cfg, backend, view, clock, sleep, manual, self.event, self.t0)

    @property
    def samples(self) -> dict[str, list[Sample]]:
        """Every sample of both colours over the rollout."""
        return self.watcher.ev.samples

    @property
    def alerts(self) -> list[str]:
        """Alerting thresholds crossed (reported, not acted on)."""
        return self.watcher.ev.alerts

    # ---- bookkeeping -----------------------------------------------------------------
    def event(self, state: RolloutState, text: str, *, quiet: bool = False) -> None:
        """Add to the timeline, save, say."""
        state.events.append(
            {
                "t": round(self.clock() - self.t0, 3),
                "at": datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3],
                "event": text,
            }
        )
        self._save(state)
        if not quiet:
            self.say(text)

    def intend(self, state: RolloutState, action: str, **args: object) -> None:
        """Record, durably, the action about to be taken (write-ahead)."""
        state.intent = {"action": action, **args}
        self._save(state)

    def target(self, state: RolloutState, new_pct: int) -> dict[str, int]:
        """new/old at new_pct/100-new_pct (no old colour: the idle one gets 0)."""
        return {
            state.new: new_pct,
            state.old or other(state.new): 100 - new_pct if state.old else 0,
        }

    def set_weights(self, state: RolloutState, weights: dict[str, int]) -> None:
        """Intent, the switch (it reads its weights back), then the weights recorded.
        The caller saves (with its event)."""
        self.intend(state, "weights", weights=weights)
        self.backend.set_weights(weights)
        state.weights, state.intent = dict(weights), {}

    def stop(self, state: RolloutState, colour: str, *, checked: bool = True) -> int:
        """Stop `colour` once the proxy reads back weight 0 for it (`checked`); drain
        first. The open connections left after the drain."""
        if checked:
            seen = self.backend.colours()[colour]
            if seen.weight > 0:
                raise StillServing(
                    f"not stopping {colour}: HAProxy still gives it {seen.weight}% of the traffic"
                )
        self.intend(state, "stop", colour=colour)
        left = self.backend.drain(colour, self.cfg.drain_timeout) if checked else 0
        self.backend.stop(colour, self.cfg.stop_timeout)
        state.intent = {}
        return left

    def observe(self) -> dict[str, ColourState] | None:
        """Both colours as the backend sees them; None when it cannot be asked."""
        try:
            return self.backend.colours()
        except Exception as err:  # recovery then acts on the recorded intent alone
            self.say(f"cannot read the colours back ({type(err).__name__}: {err})")
            return None

    # ---- the rollout -----------------------------------------------------------------
    def deploy(self, state: RolloutState, release: Release) -> Outcome:
        """Run the rollout from `state` (phase started); roll back on any trigger."""
        try:
            return self._deploy(state, release)
        except KeyboardInterrupt:
            if state.phase in ("stopping_old", "done"):
                raise  # it had passed: the old colour is going; recovery finishes forward
            return self.rollback(
                state,
                Breach(analysis.INTERRUPTED, "interrupted (Ctrl-C / SIGTERM)"),
                interrupted=True,
            )
        except Exception as err:
            if state.phase in ("stopping_old", "done"):
                raise  # never roll back onto a colour that may already be stopped
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            self.rollback(state, Breach("error", reason))
            raise

    def _start_new(self, state: RolloutState, release: Release, note: str = "") -> Health:
        """Start `release` on the idle colour and wait for its health gate."""
        self.intend(state, "start", colour=state.new)
        self.backend.start(state.new, release)
        state.phase, state.intent = "new_up", {}
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
            self.set_weights(state, self.target(state, pct))
            if self.watcher.ev.traffic_since is None:
                self.watcher.ev.traffic_since = t_switch
            self.event(
                state,
                f"step {i + 1}/{n}: {state.new} {pct}%, {state.old} {100 - pct}% "
                f"(switched in {1000 * (self.clock() - t_switch):.1f} ms)",
            )
            breach = self.watcher.run(
                state, self.cfg.bake, f"step {i + 1}/{n} ({pct}%)", looks=n + 1
            )
            if breach is not None:
                return self.rollback(state, breach)
            self.event(state, f"step {i + 1} passed: {pct}% on {state.new}")
        return self.final_watch(state)

    def final_watch(self, state: RolloutState) -> Outcome:
        """100% on the new colour, the old one still up, judged like a step; then
        forward."""
        state.phase = "watching"
        self.event(
            state,
            f"final watch: {self.cfg.final_watch:g}s at 100% with "
            f"{state.old or 'no old colour'} still up",
        )
        breach = self.watcher.run(
            state,
            self.cfg.final_watch,
            "final watch",
            need_data=bool(state.old),
            looks=len(state.steps) + 1,
        )
        if breach is not None:
            return self.rollback(state, breach)
        self.finish_forward(state)
        return Outcome(ok=True)

    def first(self, state: RolloutState) -> Outcome:
        """The very first deployment: no old colour to compare with or go back to, and
        usually no traffic yet: all of it at once, then the final watch with the
        triggers armed (no hold on no data: there is nothing to hold for)."""
        state.step, state.phase = 0, "shifting"
        self.set_weights(state, self.target(state, 100))
        self.watcher.ev.traffic_since = self.clock()
        self.event(state, f"first deployment: {state.new} 100%")
        return self.final_watch(state)

    def finish_forward(self, state: RolloutState) -> None:
        """The new colour has passed: record it, make sure (read back) the old colour has
        no traffic, drain and stop it; done."""
        state.phase = "stopping_old"
        self.event(state, f"{state.version} passed every step; stopping {state.old or '-'}")
        with shield():
            self.set_weights(state, self.target(state, 100))
            if state.old:
                left = self.stop(state, state.old)
                if left:
                    self.say(
                        f"{state.old}: {left} connection(s) still open after "
                        f"{self.cfg.drain_timeout:g}s; stopped anyway"
                    )
        state.phase = "done"
        self.event(state, f"done: {state.new} serves 100% with {state.version}")

    # ---- rolling back ----------------------------------------------------------------
    def rollback(
        self, state: RolloutState, breach: Breach, *, interrupted: bool = False
    ) -> Outcome:
        """Record the trigger; all traffic to the old colour FIRST (read back), then keep
        the new colour's evidence, drain and stop it. Signals wait until it is done."""
        with shield():
            t_trigger = self.clock()
            recovery: float | None = None
            recovered_at = None
            state.phase, state.trigger, state.reason = "rolling_back", breach.trigger, breach.detail
            self.event(state, f"TRIGGER {breach.trigger}: {breach.detail}")
            switched = self._traffic_back(state)
            if switched and state.old:
                recovery = self.clock() - t_trigger
                recovered_at = datetime.now(UTC)
                self.event(
                    state,
                    f"all traffic on {state.old} ({state.old_version}) "
                    f"{recovery * 1000:.1f} ms after the trigger",
                )
            logs = _quietly(self.backend.logs, state.new, self.cfg.log_lines)
            raw = {
                c: _quietly(self.backend.raw_metrics, c, self.cfg.request_timeout)
                for c in (state.new, state.old)
                if c
            }
            try:
                self.stop(state, state.new, checked=switched)
            except Exception as err:  # the record is still written; recovery retries
                self.event(state, f"cannot stop {state.new}: {err}; it is left to recovery")
            else:
                state.phase = "rolled_back"
                self.event(
                    state,
                    f"{state.new} stopped; {state.old or 'nothing'} serves "
                    f"{state.old_version or ''}".rstrip(),
                )
        return Outcome(False, breach, recovery, recovered_at, logs, raw, interrupted)

    def _traffic_back(self, state: RolloutState) -> bool:
        """Every weight on the old colour, read back; False when the switch could not be
        reached or did not take it (the caller then stops the new colour anyway)."""
        try:
            self.set_weights(state, self.target(state, 0))
            seen = self.backend.colours()[state.new].weight
            if seen:
                raise StillServing(f"HAProxy still gives {state.new} {seen}%")
        except Exception as err:
            self.event(
                state,
                f"the traffic switch failed ({err}); stopping {state.new} anyway: the "
                f"proxy's health checks take it out",
            )
            return False
        return True

    def switch(self, state: RolloutState, release: Release) -> Outcome:
        """An emergency switch (`invoke rollback --to V`): start `release` on the idle
        colour, health gate, ALL traffic at once, stop the other colour."""
        health = self._start_new(state, release)
        if not health.healthy:
            self.stop(state, state.new)
            state.phase = "rolled_back"
            self.event(state, f"health gate failed: {health.reason}; {state.new} stopped")
            return Outcome(False, Breach(analysis.HEALTH, f"health gate: {health.reason}"))
        state.step, state.phase = 0, "shifting"
        t_switch = self.clock()
        self.set_weights(state, self.target(state, 100))
        self.event(
            state, f"all traffic on {state.new} in {1000 * (self.clock() - t_switch):.1f} ms"
        )
        self.finish_forward(state)
        return Outcome(ok=True)

    def recover(self, state: RolloutState) -> Outcome:
        """Finish a rollout a killed controller left, from its recorded intent and the
        world read back: forward, resume the final watch, or back."""
        seen = self.observe()
        how = states.recovery(state, seen)
        self.event(state, f"recovery ({state.phase}, intent {state.intent or '-'}): {how}")
        if how == "stuck":
            raise PreconditionFailed(
                f"neither colour runs and the rollout of {state.version} was {state.phase}: "
                "start the proxy and a colour by hand (`invoke rollback --to VERSION`)"
            )
        if how == "forward":
            self.finish_forward(state)
            return Outcome(ok=True)
        if how == "watch":
            self.set_weights(state, self.target(state, 100))
            self.watcher.ev.traffic_since = self.clock()
            return self.final_watch(state)
        breach = (
            Breach(state.trigger, state.reason)
            if state.trigger
            else Breach(analysis.CONTROLLER_LOST, f"the controller stopped during {state.phase}")
        )
        return self.rollback(state, breach)


def _quietly(get: Callable[[str, Any], str], colour: str, arg: Any) -> str:
    """Evidence is best effort: a rollback never fails for want of it."""
    try:
        return get(colour, arg)
    except Exception as err:
        return f"(unavailable: {type(err).__name__}: {err})"
