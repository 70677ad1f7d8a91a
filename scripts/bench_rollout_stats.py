"""How often the rollout analysis cries wolf, how often it catches a worse version, and
how long an error step takes to fire: the real controller (deploy/rollout/controller.py,
its triggers and relative checks, production's default thresholds) driven over a
simulated pair of colours on a simulated clock.

    python3 scripts/bench_rollout_stats.py [--runs 500] [--rps 5] [--base-error 0.005]
        [--fault-error 0.03] [--step-error 0.2] [--delay-runs 200] [--seed 1]

1. `--runs` rollouts of two IDENTICAL versions (both colours fail `--base-error` of
   their requests, at random): every rollback is a false abort;
2. `--runs` rollouts of a version failing `--fault-error` (under the 5% absolute
   trigger): every rollback is a detection;
3. `--delay-runs` rollouts whose new colour turns bad (`--step-error`) at a random
   instant of the final watch (so mid-window and mid-sample): trigger-to-fire delay.

Traffic is Poisson at `--rps` requests a second over both colours, split by the
weights; latency lognormal around 2 ms (identical colours: the latency checks must
stay quiet too). Rates come with 95% Wilson intervals. Prints the numbers; writes
nothing.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from ci.settings import load  # noqa: E402
from deploy.health import Probe  # noqa: E402
from deploy.rollout import config  # noqa: E402
from deploy.rollout.backend import ColourState, Release  # noqa: E402
from deploy.rollout.controller import Controller  # noqa: E402
from deploy.rollout.live import View  # noqa: E402
from deploy.rollout.metrics import Counters  # noqa: E402
from deploy.rollout.state import RolloutState  # noqa: E402
from deploy.rollout.stats import median, wilson  # noqa: E402

BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, math.inf)


@dataclass
class Clock:
    """Simulated seconds (`sleep` advances them)."""

    now: float = 0.0

    def sleep(self, s: float) -> None:
        self.now += s


@dataclass
class Colour:
    """One colour's cumulative counters."""

    requests: int = 0
    errors: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BOUNDS))
    latency_sum: float = 0.0


@dataclass
class SimBackend:
    """Two colours behind a weighted split; `error(colour, t)` is each request's chance
    to fail at time t."""

    clock: Clock
    rng: random.Random
    rps: float
    errors: Mapping[str, float]
    turn_bad_at: float = math.inf  # the new colour's error step (delay runs)
    step_error: float = 0.0
    weights: dict[str, int] = field(default_factory=lambda: {"blue": 100, "green": 0})
    colours_: dict[str, Colour] = field(
        default_factory=lambda: {"blue": Colour(), "green": Colour()}
    )
    running: dict[str, bool] = field(default_factory=lambda: {"blue": True, "green": False})
    last: float = 0.0

    def _poisson(self, lam: float) -> int:
        if lam > 50:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit, k, prod = math.exp(-lam), 0, self.rng.random()
        while prod > limit:
            k += 1
            prod *= self.rng.random()
        return k

    def _advance(self) -> None:
        # in slices of at most 1 s, so an error step lands where it belongs
        while self.last < self.clock.now:
            t = min(self.clock.now, math.floor(self.last) + 1.0)
            dt, self.last = t - self.last, t
            for name, w in self.weights.items():
                c = self.colours_[name]
                p = self.errors.get(name, 0.0)
                if name == "green" and t > self.turn_bad_at:
                    p = self.step_error
                for _ in range(self._poisson(self.rps * w / 100 * dt)):
                    c.requests += 1
                    c.errors += self.rng.random() < p
                    lat = self.rng.lognormvariate(math.log(0.002), 0.35)
                    c.latency_sum += lat
                    for i, bound in enumerate(BOUNDS):
                        if lat <= bound:
                            c.buckets[i] += 1

    def describe(self) -> str:
        return "simulated"

    def check(self) -> None:
        pass

    def colours(self) -> dict[str, ColourState]:
        return {c: ColourState(c, self.running[c], "", "", w) for c, w in self.weights.items()}

    def start(self, colour: str, release: Release) -> None:
        self.running[colour] = True

    def set_weights(self, weights: Mapping[str, int]) -> None:
        self._advance()
        self.weights = dict(weights)

    def drain(self, colour: str, timeout: float) -> int:
        return 0

    def stop(self, colour: str, timeout: float) -> None:
        self.running[colour] = False

    def health(self, colour: str, timeout: float) -> Probe:
        return Probe(200, "ok")

    def counters(self, colour: str, at: float, timeout: float) -> Counters:
        self._advance()
        c = self.colours_[colour]
        return Counters(
            at=at,
            requests=c.requests,
            errors=c.errors,
            buckets=tuple(zip(BOUNDS, map(float, c.buckets), strict=True)),
            latency_sum=c.latency_sum,
        )

    def logs(self, colour: str, lines: int) -> str:
        return ""

    def raw_metrics(self, colour: str, timeout: float) -> str:
        return ""


def rollout(
    cfg: config.ProductionConfig, backend: SimBackend, clock: Clock
) -> tuple[str | None, float]:
    """(the trigger that rolled it back or None, when it fired)."""
    st = RolloutState(
        id="sim",
        version="2",
        image="img",
        new="green",
        old="blue",
        old_version="1",
        steps=list(cfg.steps),
    )
    ctl = Controller(
        cfg,
        backend,
        View(cfg.thresholds, lambda s: None, rich=False),
        lambda s: None,
        lambda s: None,
        clock=lambda: clock.now,
        sleep=clock.sleep,
    )
    out = ctl.deploy(st, Release("2", "img"))
    if out.ok:
        return None, clock.now
    assert out.breach is not None
    fired = next((e["t"] for e in st.events if str(e["event"]).startswith("TRIGGER")), clock.now)
    return out.breach.trigger, float(fired)


def rate_line(label: str, hits: int, runs: int) -> str:
    low, high = wilson(hits, runs)
    return (
        f"{label}: {hits}/{runs} = {hits / runs:.1%} (95% Wilson interval {low:.1%} - {high:.1%})"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the three experiments; print the rates, intervals and delays."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--delay-runs", type=int, default=200)
    ap.add_argument("--rps", type=float, default=5.0)
    ap.add_argument("--base-error", type=float, default=0.005)
    ap.add_argument("--fault-error", type=float, default=0.03)
    ap.add_argument("--step-error", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    for name in ("base_error", "fault_error", "step_error"):
        if not 0 <= getattr(args, name) <= 1:
            ap.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.runs < 1 or args.delay_runs < 1 or args.rps <= 0:
        ap.error("--runs and --delay-runs must be at least 1, --rps above 0")
    cfg = config.load(load(ROOT, {}))
    th = cfg.thresholds
    print(
        f"production defaults: steps {list(cfg.steps)}%, bake {cfg.bake:g}s, final watch "
        f"{cfg.final_watch:g}s, samples every {cfg.sample_interval:g}s, error trigger "
        f"{th.error_rate:.0%} over {th.error_window:g}s, alpha {th.alpha:g} shared by "
        f"{len(cfg.steps) + 1} looks; traffic {args.rps:g} req/s (Poisson)"
    )
    rng = random.Random(args.seed)

    def one(
        errors: Mapping[str, float], turn_bad_at: float = math.inf, step_error: float = 0.0
    ) -> tuple[str | None, float, float]:
        clock = Clock()
        backend = SimBackend(clock, rng, args.rps, errors, turn_bad_at, step_error)
        trigger, fired = rollout(cfg, backend, clock)
        return trigger, fired, backend.turn_bad_at

    same = {"blue": args.base_error, "green": args.base_error}
    false = [one(same)[0] for _ in range(args.runs)]
    aborted = [t for t in false if t is not None]
    print(
        rate_line(
            f"false aborts (identical versions, {args.base_error:.1%} errors each)",
            len(aborted),
            args.runs,
        )
        + (f"; triggers {sorted(aborted)}" if aborted else "")
    )
    bad = {"blue": args.base_error, "green": args.fault_error}
    caught = [one(bad) for _ in range(args.runs)]
    hits = [(t, f) for t, f, _ in caught if t is not None]
    by: dict[str, int] = {}
    for t, _ in hits:
        by[t] = by.get(t, 0) + 1
    print(
        rate_line(
            f"detection (new version {args.fault_error:.1%} errors vs {args.base_error:.1%})",
            len(hits),
            args.runs,
        )
        + f"; by trigger {by}; median time to rollback "
        f"{median([f for _, f in hits]) if hits else float('nan'):.0f}s after the first step"
    )
    start = cfg.bake * len(cfg.steps) + 2 * cfg.sample_interval
    delays, missed = [], 0
    for _ in range(args.delay_runs):
        at = start + rng.uniform(0, cfg.final_watch / 2)
        trigger, fired, _ = one(
            {"blue": args.base_error, "green": args.base_error},
            turn_bad_at=at,
            step_error=args.step_error,
        )
        if trigger is None or fired < at:
            missed += 1
            continue
        delays.append(fired - at)
    delays.sort()
    if delays:
        p95 = delays[min(len(delays) - 1, math.ceil(0.95 * len(delays)) - 1)]
        print(
            f"trigger-to-fire delay ({args.step_error:.0%} errors from a random instant of "
            f"the final watch, {len(delays)} runs): median {median(delays):.1f}s, p95 "
            f"{p95:.1f}s, max {delays[-1]:.1f}s (error window {th.error_window:g}s, samples "
            f"every {cfg.sample_interval:g}s); not fired or fired early: {missed}"
        )
    else:
        print(f"trigger-to-fire delay: no run fired ({missed} missed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
