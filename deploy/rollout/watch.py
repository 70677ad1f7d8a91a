"""Watching the colours during a bake window or the final watch: scrape both colours'
counters every `sample_interval`, probe the new colour's /health every
`health_interval`, fire the absolute triggers on the rolling window, and judge the
window at its end (holding while inconclusive). Only observes: the controller acts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from deploy.rollout import analysis
from deploy.rollout.analysis import Breach
from deploy.rollout.backend import Backend
from deploy.rollout.config import ProductionConfig
from deploy.rollout.live import Status, View
from deploy.rollout.metrics import Counters, Sample, sample
from deploy.rollout.state import RolloutState


@dataclass
class Evidence:
    """What the watches saw over the whole rollout (kept across steps: a window spans
    a step change)."""

    samples: dict[str, list[Sample]] = field(default_factory=lambda: {"blue": [], "green": []})
    prev: dict[str, Counters] = field(default_factory=dict)  # the last GOOD counters
    probes: list[tuple[bool, str]] = field(default_factory=list)
    scrapes: list[tuple[bool, str]] = field(default_factory=list)  # the new colour's
    alerts: list[str] = field(default_factory=list)
    traffic_since: float | None = None
    looks: int = 0  # relative checks run so far (their alpha is shared)


class Watcher:
    """Runs one watch over a backend, recording into `evidence`."""

    def __init__(
        self,
        cfg: ProductionConfig,
        backend: Backend,
        view: View,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        manual: Callable[[], str | None],
        note: Callable[[RolloutState, str], None],
        t0: float,
    ) -> None:
        self.cfg = cfg
        self.th = cfg.thresholds
        self.backend = backend
        self.view = view
        self.clock = clock
        self.sleep = sleep
        self.manual = manual
        self.note = note
        self.t0 = t0
        self.ev = Evidence()

    def scrape(self, state: RolloutState, now: float) -> None:
        """One sample per colour. A failed scrape keeps the last good counters (the
        next good one then spans the gap) and counts as a failure of the colour."""
        for colour in (state.new, state.old):
            if not colour:
                continue
            try:
                cur = self.backend.counters(colour, now, self.cfg.request_timeout)
                problem = "" if cur is not None else "no metrics answer"
            except Exception as err:  # a scrape must never end the watch
                cur, problem = None, f"{type(err).__name__}: {err}"
            if colour == state.new and self.ev.traffic_since is not None:
                self.ev.scrapes.append((cur is not None, problem))
            if cur is None:
                continue
            prev = self.ev.prev.get(colour)
            self.ev.prev[colour] = cur
            if prev is not None and self.ev.traffic_since is not None:
                self.ev.samples[colour].append(sample(prev, cur))

    def _probe(self, state: RolloutState) -> Breach | None:
        probe = self.backend.health(state.new, self.cfg.request_timeout)
        self.ev.probes.append((probe.healthy, probe.detail))
        return analysis.health_breach(self.ev.probes, self.th.health_failures)

    def _sample(self, state: RolloutState, now: float) -> Breach | None:
        self.scrape(state, now)
        new = self.ev.samples[state.new]
        if new:
            for text in analysis.alerts(new[-1], self.th):
                self.ev.alerts.append(f"{now - self.t0:.1f}s {state.new}: {text}")
        since = now if self.ev.traffic_since is None else self.ev.traffic_since
        return analysis.scrape_breach(
            self.ev.scrapes, self.th.health_failures
        ) or analysis.triggers(new, now=now, since=since, th=self.th)

    def run(
        self,
        state: RolloutState,
        duration: float,
        label: str,
        *,
        need_data: bool = True,
        looks: int = 1,
    ) -> Breach | None:
        """Watch for `duration`; a trigger ends it early. At the end the window is judged
        (relative check included; `looks`: how many judged windows share its alpha);
        an inconclusive window holds up to `hold_max`, then is a breach."""
        start = self.clock()
        end, hold_end = start + duration, start + duration + self.cfg.hold_max
        next_sample = next_health = start
        holding = ""
        if state.new not in self.ev.prev:
            self.scrape(state, start)
        while True:
            now = self.clock()
            if now >= next_health:
                next_health = now + self.cfg.health_interval
                breach = self._probe(state)
                if breach is not None:
                    return breach
            if now >= next_sample:
                who = self.manual()
                if who is not None:
                    return Breach(analysis.MANUAL, f"manual rollback requested by {who}")
                next_sample = now + self.cfg.sample_interval
                breach = self._sample(state, now)
                if breach is not None:
                    return breach
                self.show(state, label, end - now, holding)
            if now >= end and not need_data:
                return None
            if now >= end:
                verdict = self.judge(state, start, looks)
                if verdict.outcome == "promote":
                    return None
                if verdict.outcome == "abort":
                    return Breach(verdict.trigger, verdict.detail)
                if not holding:
                    holding = verdict.detail
                    self.note(state, f"{label}: {verdict.detail}")
                if now >= hold_end:
                    detail = verdict.detail.removeprefix("inconclusive: ")
                    return Breach(analysis.INCONCLUSIVE, f"{detail}; held {self.cfg.hold_max:g}s")
            wake = min(next_sample, next_health, end if now < end else next_sample)
            self.sleep(max(0.01, wake - self.clock()))

    def judge(self, state: RolloutState, start: float, looks: int) -> analysis.Judgement:
        """The verdict on the window since `start`. The old colour's side is the same
        window when it served in it, else its last window with traffic (the final
        watch: the old colour idles at 0%, the steps before are its baseline)."""
        window = [s for s in self.ev.samples[state.new] if s.at >= start]
        old_all = self.ev.samples.get(state.old, []) if state.old else []
        old = [s for s in old_all if s.at >= start]
        if not analysis.with_data(old, self.th.min_requests):
            before = [s for s in old_all if s.at < start and s.requests >= self.th.min_requests]
            old = [s for s in before if s.at > before[-1].at - self.cfg.bake] if before else []
        return analysis.judge(
            window, old, self.th, state.weights.get(state.new, 100), looks=max(1, looks)
        )

    def show(self, state: RolloutState, label: str, left: float, note: str) -> None:
        """Update the live view."""
        latest = {
            c: (self.ev.samples[c][-1] if self.ev.samples.get(c) else None)
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
