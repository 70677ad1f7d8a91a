"""The rollout's judgement, as pure functions over samples (metrics.Sample).

- A trigger fires on the rolling WINDOW's aggregate: the new colour has been observed
  for the whole window, and the window's requests and errors summed (latency: the
  quantile of the window's merged histogram, i.e. of all its requests) breach the
  threshold. Samples without traffic (the one at a step change) add nothing and take
  nothing away, so a window spans step changes; errors in alternating slices count
  as they add up. The error trigger also needs the excess to be significant (exact
  binomial test at `alpha`): 1 error in 3 requests is no evidence of a 5% rate.
- Health: `health_failures` consecutive failed probes; likewise failed scrapes of the
  new colour's metrics.
- At the end of a bake window the step is judged: fewer than `min_samples` samples
  with traffic is INCONCLUSIVE (the step holds; no promotion on no data); then the
  relative check compares the new colour with the old one over the same window (a rank
  test on latency, Fisher's exact test on errors) and aborts only when the difference
  is both significant and large (`latency_ratio`, `error_ratio`). The rollout judges
  several windows (each step and the final watch): `alpha` is their budget, shared
  Bonferroni-style (alpha / looks per window), so the chance that two identical
  versions abort anywhere in a rollout stays under `alpha`.
- Alerting thresholds are reported, never acted on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deploy.rollout.config import Thresholds
from deploy.rollout.metrics import Sample, merge, quantile
from deploy.rollout.stats import binomial_greater, fisher_greater, mann_whitney_greater, median

ERROR_RATE = "error-rate"
LATENCY = "latency"
HEALTH = "health"
RELATIVE_LATENCY = "relative-latency"
RELATIVE_ERRORS = "relative-errors"
INCONCLUSIVE = "inconclusive"
MANUAL = "manual"
INTERRUPTED = "interrupted"
CONTROLLER_LOST = "controller-lost"


@dataclass(frozen=True)
class Breach:
    """A trigger that fired: its name and the evidence in one line."""

    trigger: str
    detail: str


@dataclass(frozen=True)
class Judgement:
    """The end of a bake window: "promote", "hold" (inconclusive) or "abort"."""

    outcome: str
    detail: str
    trigger: str = ""


def with_data(samples: Sequence[Sample], min_requests: int) -> list[Sample]:
    """The samples in which the colour served at least `min_requests` requests."""
    return [s for s in samples if s.requests >= min_requests]


@dataclass(frozen=True)
class Window:
    """A rolling window's aggregate."""

    samples: int
    requests: int
    errors: int
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        """errors / requests (0 without requests)."""
        return self.errors / self.requests if self.requests else 0.0


def window(samples: Sequence[Sample], *, now: float, length: float) -> Window:
    """The samples of the last `length` seconds summed; p99 from their merged
    histogram."""
    recent = [s for s in samples if s.at > now - length + 1e-6]
    merged = merge(s.buckets for s in recent)
    p99 = quantile(0.99, merged)
    return Window(
        len(recent),
        sum(s.requests for s in recent),
        sum(s.errors for s in recent),
        None if p99 is None else p99 * 1000,
    )


def triggers(
    samples: Sequence[Sample], *, now: float, since: float, th: Thresholds
) -> Breach | None:
    """The first absolute trigger the new colour's rolling windows fire, or None."""
    need = th.min_requests * th.min_samples
    if now - since >= th.error_window - 1e-6:
        w = window(samples, now=now, length=th.error_window)
        if w.requests >= need and w.error_rate > th.error_rate:
            test = binomial_greater(w.errors, w.requests, th.error_rate)
            if test.p_value < th.alpha:
                return Breach(
                    ERROR_RATE,
                    f"error rate {w.error_rate:.1%} over the last {th.error_window:g}s "
                    f"({w.errors}/{w.requests}) > {th.error_rate:.1%}, binomial "
                    f"p={test.p_value:.2g} < {th.alpha:g}",
                )
    if now - since >= th.p99_window - 1e-6:
        w = window(samples, now=now, length=th.p99_window)
        if w.requests >= need and w.p99_ms is not None and w.p99_ms > th.p99_ms:
            return Breach(
                LATENCY,
                f"p99 {w.p99_ms:.1f} ms over the last {th.p99_window:g}s ({w.requests} "
                f"requests) > {th.p99_ms:g} ms",
            )
    return None


def health_breach(probes: Sequence[tuple[bool, str]], failures: int) -> Breach | None:
    """`failures` consecutive failed health probes (oldest first), or None."""
    if len(probes) < failures:
        return None
    last = probes[-failures:]
    if any(ok for ok, _ in last):
        return None
    return Breach(HEALTH, f"{failures} consecutive /health failures (last: {last[-1][1]})")


def scrape_breach(scrapes: Sequence[tuple[bool, str]], failures: int) -> Breach | None:
    """`failures` consecutive failed metric scrapes of the new colour (oldest first): a
    colour that cannot say how it serves is treated like one failing its health probe."""
    last = scrapes[-failures:]
    if len(last) < failures or any(ok for ok, _ in last):
        return None
    return Breach(HEALTH, f"{failures} consecutive failed /metrics scrapes (last: {last[-1][1]})")


def alerts(s: Sample, th: Thresholds) -> list[str]:
    """Alerting thresholds the sample is over (reported, not acted on)."""
    out = []
    if s.requests >= th.min_requests:
        if s.error_rate is not None and s.error_rate > th.alert_error_rate:
            out.append(f"error rate {s.error_rate:.1%} > alert {th.alert_error_rate:.1%}")
        if s.p99_ms is not None and s.p99_ms > th.alert_p99_ms:
            out.append(f"p99 {s.p99_ms:.1f} ms > alert {th.alert_p99_ms:g} ms")
    return out


def relative(
    new: Sequence[Sample],
    old: Sequence[Sample],
    th: Thresholds,
    *,
    latency: bool = True,
    looks: int = 1,
) -> Breach | None:
    """The relative check over one window: the new colour markedly and significantly
    slower (`latency`: only on a balanced split, see `judge`), or more failing, than the
    old one. None when it is not (or when the old colour had too little traffic).
    `looks`: the windows of the rollout sharing `alpha`."""
    alpha = th.alpha / max(1, looks)
    new_ok, old_ok = with_data(new, th.min_requests), with_data(old, th.min_requests)
    if len(new_ok) < th.min_samples or len(old_ok) < th.min_samples:
        return None
    lat_new = [s.mean_ms for s in new_ok if s.mean_ms is not None]
    lat_old = [s.mean_ms for s in old_ok if s.mean_ms is not None]
    if latency and len(lat_new) >= th.min_samples and len(lat_old) >= th.min_samples:
        test = mann_whitney_greater(lat_new, lat_old)
        m_new, m_old = median(lat_new), median(lat_old)
        ratio = m_new / m_old if m_old > 0 else float("inf")
        if test.p_value < alpha and ratio >= th.latency_ratio:
            return Breach(
                RELATIVE_LATENCY,
                f"new colour slower: median {m_new:.2f} ms vs {m_old:.2f} ms "
                f"({ratio:.1f}x >= {th.latency_ratio:g}x), Mann-Whitney p={test.p_value:.2g} "
                f"< {alpha:.2g} over {len(lat_new)}+{len(lat_old)} samples",
            )
    e_new, n_new = sum(s.errors for s in new_ok), sum(s.requests for s in new_ok)
    e_old, n_old = sum(s.errors for s in old_ok), sum(s.requests for s in old_ok)
    r_new, r_old = e_new / n_new, e_old / n_old
    test = fisher_greater(e_new, n_new, e_old, n_old)
    if test.p_value < alpha and r_new >= th.error_ratio * r_old + 0.005:
        return Breach(
            RELATIVE_ERRORS,
            f"new colour fails more: {r_new:.2%} vs {r_old:.2%} ({e_new}/{n_new} vs "
            f"{e_old}/{n_old}), Fisher's exact p={test.p_value:.2g} < {alpha:.2g}",
        )
    return None


def judge(
    new: Sequence[Sample],
    old: Sequence[Sample],
    th: Thresholds,
    new_weight: int = 50,
    *,
    looks: int = 1,
) -> Judgement:
    """The verdict on a finished bake window. Latencies are compared only when the split
    gives each colour at least `relative_min_weight` percent: on a lopsided split the
    colours do not serve alike (the minority colour replays most of the order log the
    majority writes before each read, and warms its caches on a trickle), which would
    make two identical versions differ. Kayenta compares against a fresh baseline with
    the same share for the same reason; the balanced step is ours. Errors are compared
    on every step."""
    got = len(with_data(new, th.min_requests))
    if got < th.min_samples:
        return Judgement(
            "hold",
            f"inconclusive: {got} sample(s) with >= {th.min_requests} request(s) on the new "
            f"colour, {th.min_samples} needed; holding (no promotion on no data)",
        )
    if th.relative:
        balanced = min(new_weight, 100 - new_weight) >= th.relative_min_weight
        breach = relative(new, old, th, latency=balanced, looks=looks)
        if breach is not None:
            return Judgement("abort", breach.detail, breach.trigger)
    return Judgement("promote", f"{got} samples within every threshold")


def summary(samples: Sequence[Sample]) -> Sample | None:
    """The whole window as one sample (for reports): summed counts, worst quantiles."""
    if not samples:
        return None

    def worst(get: Callable[[Sample], float | None]) -> float | None:
        values = [v for v in map(get, samples) if v is not None]
        return max(values) if values else None

    return Sample(
        at=samples[-1].at,
        requests=sum(s.requests for s in samples),
        errors=sum(s.errors for s in samples),
        p50_ms=worst(lambda s: s.p50_ms),
        p95_ms=worst(lambda s: s.p95_ms),
        p99_ms=worst(lambda s: s.p99_ms),
        mean_ms=worst(lambda s: s.mean_ms),
    )
