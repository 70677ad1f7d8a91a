"""The rollout's judgement, as pure functions over samples (metrics.Sample).

- A trigger fires on a SUSTAINED breach: the new colour has been observed for the whole
  window and every sample in it is over the threshold (a sample without enough
  requests is no evidence of a breach). A spike shorter than the window never fires.
  Argo Rollouts' and Flagger's failure counters fire on a cumulative count of bad
  checks instead, so two blips an hour apart abort a healthy rollout.
- Health: `health_failures` consecutive failed probes.
- At the end of a bake window the step is judged: fewer than `min_samples` samples
  with traffic is INCONCLUSIVE (the step holds; no promotion on no data); then the
  relative check compares the new colour with the old one over the same window (a rank
  test on latency, a proportion test on errors) and aborts only when the difference is
  both significant and large (`latency_ratio`, `error_ratio`), so two identical
  versions never abort on noise.
- Alerting thresholds are reported, never acted on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deploy.rollout.config import Thresholds
from deploy.rollout.metrics import Sample
from deploy.rollout.stats import mann_whitney_greater, median, proportion_greater

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


def sustained(
    samples: Sequence[Sample],
    *,
    now: float,
    since: float,
    window: float,
    min_requests: int,
    value: Callable[[Sample], float | None],
    threshold: float,
) -> list[float] | None:
    """The values of the window's samples when EVERY one breaches `threshold` and the
    colour has been observed (from `since`) for the whole window; else None."""
    if now - since < window - 1e-6:
        return None  # not watched for a whole window yet
    recent = [s for s in samples if s.at > now - window + 1e-6]
    if not recent:
        return None
    values = []
    for s in recent:
        v = value(s) if s.requests >= min_requests else None
        if v is None or v <= threshold:
            return None
        values.append(v)
    return values


def triggers(
    samples: Sequence[Sample], *, now: float, since: float, th: Thresholds
) -> Breach | None:
    """The first absolute trigger the new colour's samples fire, or None."""
    errors = sustained(
        samples,
        now=now,
        since=since,
        window=th.error_window,
        min_requests=th.min_requests,
        value=lambda s: s.error_rate,
        threshold=th.error_rate,
    )
    if errors is not None:
        return Breach(
            ERROR_RATE,
            f"error rate over {th.error_rate:.1%} in all {len(errors)} samples of "
            f"{th.error_window:g}s (min {min(errors):.1%}, max {max(errors):.1%})",
        )
    p99 = sustained(
        samples,
        now=now,
        since=since,
        window=th.p99_window,
        min_requests=th.min_requests,
        value=lambda s: s.p99_ms,
        threshold=th.p99_ms,
    )
    if p99 is not None:
        return Breach(
            LATENCY,
            f"p99 over {th.p99_ms:g} ms in all {len(p99)} samples of {th.p99_window:g}s "
            f"(min {min(p99):.1f} ms, max {max(p99):.1f} ms)",
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
    new: Sequence[Sample], old: Sequence[Sample], th: Thresholds, *, latency: bool = True
) -> Breach | None:
    """The relative check over one window: the new colour markedly and significantly
    slower (`latency`: only on a balanced split, see `judge`), or more failing, than the
    old one. None when it is not (or when the old colour had too little traffic)."""
    new_ok, old_ok = with_data(new, th.min_requests), with_data(old, th.min_requests)
    if len(new_ok) < th.min_samples or len(old_ok) < th.min_samples:
        return None
    lat_new = [s.mean_ms for s in new_ok if s.mean_ms is not None]
    lat_old = [s.mean_ms for s in old_ok if s.mean_ms is not None]
    if latency and len(lat_new) >= th.min_samples and len(lat_old) >= th.min_samples:
        test = mann_whitney_greater(lat_new, lat_old)
        m_new, m_old = median(lat_new), median(lat_old)
        ratio = m_new / m_old if m_old > 0 else float("inf")
        if test.p_value < th.alpha and ratio >= th.latency_ratio:
            return Breach(
                RELATIVE_LATENCY,
                f"new colour slower: median {m_new:.2f} ms vs {m_old:.2f} ms "
                f"({ratio:.1f}x >= {th.latency_ratio:g}x), Mann-Whitney p={test.p_value:.2g} "
                f"< {th.alpha:g} over {len(lat_new)}+{len(lat_old)} samples",
            )
    e_new, n_new = sum(s.errors for s in new_ok), sum(s.requests for s in new_ok)
    e_old, n_old = sum(s.errors for s in old_ok), sum(s.requests for s in old_ok)
    r_new, r_old = e_new / n_new, e_old / n_old
    test = proportion_greater(e_new, n_new, e_old, n_old)
    if test.p_value < th.alpha and r_new >= th.error_ratio * r_old + 0.005:
        return Breach(
            RELATIVE_ERRORS,
            f"new colour fails more: {r_new:.2%} vs {r_old:.2%} ({e_new}/{n_new} vs "
            f"{e_old}/{n_old}), proportion test p={test.p_value:.2g} < {th.alpha:g}",
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
        breach = relative(new, old, th, latency=balanced)
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
