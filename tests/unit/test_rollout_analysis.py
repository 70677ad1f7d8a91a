"""The rollout's judgement: rolling-window triggers, inconclusive windows, the relative
checks, the exact tests under them, and the metrics they are computed from."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace

import pytest

from deploy.rollout import analysis, metrics, stats
from deploy.rollout.config import Thresholds
from deploy.rollout.metrics import Counters, Sample

TH = Thresholds(
    error_rate=0.05,
    error_window=120,
    p99_ms=50,
    p99_window=300,
    health_failures=3,
    alert_error_rate=0.01,
    alert_p99_ms=10,
    min_samples=3,
    min_requests=1,
    relative=True,
    alpha=0.01,
    relative_min_weight=30,
    latency_ratio=1.5,
    error_ratio=2.0,
)


BOUNDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, math.inf)


def counted(values: list[tuple[int, int, float]], step: float = 10.0) -> list[Sample]:
    """Samples every `step` s from cumulative counters, as the watch computes them:
    (requests, errors, latency ms of every request in the slice)."""
    counters = [Counters(at=0.0, buckets=tuple((b, 0.0) for b in BOUNDS))]
    for i, (req, err, ms) in enumerate(values, start=1):
        prev = counters[-1]
        buckets = tuple((b, c + (req if ms / 1000 <= b else 0)) for (b, c) in prev.buckets)
        counters.append(
            Counters(
                at=i * step,
                requests=prev.requests + req,
                errors=prev.errors + err,
                buckets=buckets,
                latency_sum=prev.latency_sum + req * ms / 1000,
            )
        )
    return [metrics.sample(a, b) for a, b in itertools.pairwise(counters)]


def series(values: list[tuple[int, int, float]], start: float = 10.0, step: float = 10.0):
    """Samples every `step` s: (requests, errors, p99 ms)."""
    return [
        Sample(at=start + i * step, requests=r, errors=e, p99_ms=p, mean_ms=p / 3)
        for i, (r, e, p) in enumerate(values)
    ]


def test_error_trigger_fires_on_the_window_rate() -> None:
    bad = counted([(100, 10, 5)] * 12)  # 10% errors for 120 s
    fired = analysis.triggers(bad, now=120, since=0, th=TH)
    assert fired is not None and fired.trigger == analysis.ERROR_RATE
    assert "120/1200" in fired.detail


def test_nothing_fires_before_the_colour_was_watched_for_a_whole_window() -> None:
    bad = counted([(100, 50, 5)] * 5)
    assert analysis.triggers(bad, now=50, since=0, th=TH) is None


def test_a_few_errors_on_a_few_requests_are_no_evidence() -> None:
    # 2 of 10 requests over a 5% threshold: binomial p = 0.086, not significant
    few = counted([(1, 1 if i in (3, 8) else 0, 5) for i in range(10)] + [(0, 0, 5)] * 2)
    assert analysis.triggers(few, now=120, since=0, th=TH) is None


def test_latency_trigger_uses_its_own_window() -> None:
    slow = counted([(100, 0, 80)] * 30)
    fired = analysis.triggers(slow, now=300, since=0, th=TH)
    assert fired is not None and fired.trigger == analysis.LATENCY
    assert analysis.triggers(slow[:29], now=290, since=0, th=TH) is None
    # 0.5% of the requests slow: the window's p99 stays fast
    tail = counted([(199, 0, 2), (1, 0, 80)] * 15)
    assert analysis.triggers(tail, now=300, since=0, th=TH) is None


def test_health_needs_consecutive_failures() -> None:
    assert analysis.health_breach([(False, "503")] * 2, 3) is None
    assert (
        analysis.health_breach([(False, "503"), (True, ""), (False, "503"), (False, "503")], 3)
        is None
    )
    fired = analysis.health_breach([(True, "")] + [(False, "503 (fault injected)")] * 3, 3)
    assert (
        fired is not None and fired.trigger == analysis.HEALTH and "fault injected" in fired.detail
    )


def test_too_few_samples_holds_never_promotes() -> None:
    got = analysis.judge(series([(0, 0, 1)] * 30), [], TH)
    assert got.outcome == "hold" and "inconclusive" in got.detail
    got = analysis.judge(series([(5, 0, 1)] * 2), [], TH)
    assert got.outcome == "hold"
    assert analysis.judge(series([(5, 0, 1)] * 3), [], TH).outcome == "promote"


def test_alerting_thresholds_are_reported() -> None:
    assert analysis.alerts(Sample(0, 100, 2, p99_ms=12), TH) == [
        "error rate 2.0% > alert 1.0%",
        "p99 12.0 ms > alert 10 ms",
    ]
    assert analysis.alerts(Sample(0, 100, 0, p99_ms=3), TH) == []


def _latencies(rng: random.Random, n: int, mean: float) -> list[Sample]:
    return [
        Sample(
            at=i,
            requests=50,
            errors=0,
            p99_ms=mean * 3,
            mean_ms=rng.lognormvariate(math.log(mean), 0.25),
        )
        for i in range(n)
    ]


def test_relative_check_catches_a_3x_slower_colour_under_the_absolute_limit() -> None:
    rng = random.Random(7)
    old, new = _latencies(rng, 12, 1.0), _latencies(rng, 12, 3.0)
    assert analysis.triggers(new, now=120, since=0, th=TH) is None  # p99 9 ms << 50
    got = analysis.judge(new, old, TH, new_weight=50)
    assert got.outcome == "abort" and got.trigger == analysis.RELATIVE_LATENCY
    # on a lopsided split latencies are not compared (see analysis.judge)
    assert analysis.judge(new, old, TH, new_weight=10).outcome == "promote"
    assert analysis.judge(new, old, replace(TH, relative=False), 50).outcome == "promote"


def test_relative_check_never_aborts_identical_colours() -> None:
    rng = random.Random(11)
    aborts = 0
    for _ in range(300):
        old, new = _latencies(rng, 12, 1.0), _latencies(rng, 12, 1.0)
        aborts += analysis.judge(new, old, TH, new_weight=50).outcome == "abort"
    assert aborts == 0


def test_relative_error_check_needs_significance_and_size() -> None:
    old = [Sample(at=i, requests=100, errors=0, mean_ms=1) for i in range(10)]
    worse = [Sample(at=i, requests=100, errors=3, mean_ms=1) for i in range(10)]
    got = analysis.judge(worse, old, TH, new_weight=10)
    assert got.outcome == "abort" and got.trigger == analysis.RELATIVE_ERRORS
    same = [Sample(at=i, requests=100, errors=1 if i == 3 else 0, mean_ms=1) for i in range(10)]
    old_one = [Sample(at=i, requests=100, errors=1 if i == 5 else 0, mean_ms=1) for i in range(10)]
    assert analysis.judge(same, old_one, TH, new_weight=10).outcome == "promote"


def test_mann_whitney_matches_known_values() -> None:
    # all of `new` above all of `old`: U = n1*n2
    r = stats.mann_whitney_greater([5, 6, 7, 8], [1, 2, 3, 4])
    assert r.statistic == 16 and r.p_value < 0.02
    r = stats.mann_whitney_greater([1, 2, 3, 4], [5, 6, 7, 8])
    assert r.statistic == 0 and r.p_value > 0.98
    # ties count one half; identical samples are no evidence
    r = stats.mann_whitney_greater([1, 1, 1], [1, 1, 1])
    assert r.p_value == 1.0
    assert stats.mann_whitney_greater([], [1]).p_value == 1.0


def test_exact_tests_match_their_definitions() -> None:
    rng = random.Random(5)
    for _ in range(300):
        n1, n2 = rng.randint(1, 200), rng.randint(1, 200)
        a, b = rng.randint(0, min(n1, 12)), rng.randint(0, min(n2, 12))
        k = a + b
        exact = sum(
            math.comb(n1, x) * math.comb(n2, k - x) for x in range(a, min(k, n1) + 1)
        ) / math.comb(n1 + n2, k)
        got = stats.fisher_greater(a, n1, b, n2).p_value
        assert got == pytest.approx(exact if k else 1.0, abs=1e-12)
        n, e, r = rng.randint(1, 200), rng.randint(1, 25), rng.choice([0.01, 0.05, 0.2])
        tail = sum(math.comb(n, x) * r**x * (1 - r) ** (n - x) for x in range(e, n + 1))
        assert stats.binomial_greater(e, n, r).p_value == pytest.approx(tail, abs=1e-12)
    assert stats.median([3, 1, 2]) == 2 and stats.median([4, 1, 2, 3]) == 2.5


def test_wilson_interval_matches_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 0/10 and 1/29
    low, high = stats.wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = stats.wilson(1, 29)
    assert (low, high) == (pytest.approx(0.0061, abs=1e-4), pytest.approx(0.1718, abs=1e-4))
    assert stats.wilson(0, 0) == (0.0, 1.0)


PROM = """# TYPE http_requests_total counter
http_requests_total{route="/book/{symbol}",method="GET",status="200"} 90
http_requests_total{route="/orders",method="POST",status="500"} 10
http_requests_total{route="/health",method="GET",status="503"} 7
http_request_duration_seconds_bucket{route="/book/{symbol}",method="GET",le="0.001"} 50
http_request_duration_seconds_bucket{route="/book/{symbol}",method="GET",le="0.01"} 90
http_request_duration_seconds_bucket{route="/book/{symbol}",method="GET",le="0.1"} 90
http_request_duration_seconds_bucket{route="/book/{symbol}",method="GET",le="+Inf"} 90
http_request_duration_seconds_sum{route="/book/{symbol}",method="GET"} 0.18
http_request_duration_seconds_bucket{route="/orders",method="POST",le="0.001"} 0
http_request_duration_seconds_bucket{route="/orders",method="POST",le="0.01"} 0
http_request_duration_seconds_bucket{route="/orders",method="POST",le="0.1"} 10
http_request_duration_seconds_bucket{route="/orders",method="POST",le="+Inf"} 10
http_request_duration_seconds_sum{route="/orders",method="POST"} 0.5
http_request_duration_seconds_bucket{route="/health",method="GET",le="0.001"} 0
http_request_duration_seconds_bucket{route="/health",method="GET",le="+Inf"} 7
"""


def test_prometheus_counters_skip_health_and_sum_routes() -> None:
    c = metrics.from_prometheus(PROM, at=1.0)
    assert (c.requests, c.errors) == (100, 10)
    assert dict(c.buckets) == {0.001: 50, 0.01: 90, 0.1: 100, math.inf: 100}


def test_a_sample_is_the_difference_with_histogram_quantiles() -> None:
    cur = metrics.from_prometheus(PROM, at=2.0)
    got = metrics.sample(Counters(at=1.0), cur)
    assert (got.requests, got.errors) == (100, 10)
    assert got.p50_ms == pytest.approx(1.0)  # rank 50 ends the first bucket
    assert got.p99_ms == pytest.approx(10 + 90 * 9 / 10)  # 9 of 10 into (10, 100] ms
    assert got.mean_ms == pytest.approx(6.8)
    assert metrics.quantile(0.5, []) is None
    assert metrics.quantile(0.99, [(0.01, 1), (math.inf, 100)]) == 0.01


def test_proxy_seen_failures_count_as_requests_and_errors() -> None:
    stat = (
        "# pxname,svname,scur,econ,eresp,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other\n"
        "app,blue,0,4,2,0,80,0,0,0,0\napp,BACKEND,0,4,2,0,80,0,0,0,0\n"
    )
    rows = metrics.haproxy_servers(stat, "app")
    assert list(rows) == ["blue"]
    cur = metrics.with_proxy(Counters(at=2, requests=80, errors=0), rows["blue"])
    got = metrics.sample(Counters(at=1), cur)
    assert (got.requests, got.errors) == (86, 6)  # 6 the service never saw


def test_counter_resets_count_from_zero() -> None:
    before = Counters(at=1, requests=1000, errors=5)
    after = Counters(at=2, requests=30, errors=1)
    got = metrics.sample(before, after)
    assert (got.requests, got.errors) == (30, 1)
