"""The load, stress and soak verdicts as pure functions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci.loadtest import gates


def result(**kw) -> gates.LoadResult:
    base = dict(
        requests=1000,
        ok=1000,
        client_errors=0,
        server_errors=0,
        transport_errors=0,
        elapsed_s=2.0,
        target_rate=500.0,
        achieved_rate=499.0,
        p50_ms=1.5,
        p95_ms=2.5,
        p99_ms=3.0,
        max_ms=9.0,
    )
    base.update(kw)
    return gates.LoadResult(**base)


def test_parse_generator_json_line() -> None:
    line = json.dumps({k: 1 for k in gates.LoadResult.__dataclass_fields__ if k != "peak_rss_mb"})
    parsed = gates.parse_result("loadgen: starting\n" + line + "\n")
    assert parsed.requests == 1 and parsed.peak_rss_mb == 0.0
    with pytest.raises(ValueError, match="no JSON result"):
        gates.parse_result("requests=10 ok=10\n")
    with pytest.raises(ValueError, match=r"lacks ok, .*p99_ms"):
        gates.parse_result('{"requests": 1}')


def test_a_clean_run_passes_and_each_breach_is_named() -> None:
    limits = gates.Thresholds(p99_ms=10, error_rate=0.01, max_rss_mb=100)
    assert gates.breaches(result(), limits) == []
    slow = gates.breaches(result(p99_ms=52.3), limits)
    assert [f.message for f in slow] == ["p99 latency 52.30 ms over 10 ms"]
    failing = gates.breaches(result(server_errors=180, transport_errors=21, ok=799), limits)
    assert failing[0].message.startswith("error rate 20.10% over 1%")
    assert "180 5xx, 21 transport" in failing[0].message
    behind = gates.breaches(result(achieved_rate=300.0), limits)
    assert behind[0].message == "rate not sustained: 300 req/s of 500 req/s"
    fat = gates.breaches(result(peak_rss_mb=150.0), limits)
    assert fat[0].message == "peak RSS 150 MB over 100 MB"


def test_ramp_grows_until_a_breach_then_bisects() -> None:
    ramp = gates.Ramp(start=100, factor=2, ceiling=10000, refine=2)
    tried: list[tuple[float, bool]] = []
    capacity = 700  # a service that holds up to 700 req/s
    while (rate := gates.next_rate(ramp, tried)) is not None:
        tried.append((rate, rate <= capacity))
    assert [r for r, _ in tried] == [100, 200, 400, 800, 600, 700]
    assert gates.sustainable(tried) == 700


def test_ramp_stops_at_the_ceiling_and_reports_none_when_nothing_holds() -> None:
    ramp = gates.Ramp(start=100, factor=10, ceiling=1000, refine=2)
    tried = [(100.0, True), (1000.0, True)]
    assert gates.next_rate(ramp, tried) is None
    assert gates.sustainable([(100.0, False)]) is None
    assert gates.next_rate(ramp, [(100.0, False)]) is None


def test_soak_catches_memory_growth_and_latency_drift_not_spikes() -> None:
    limits = gates.SoakLimits(max_rss_growth_mb=50, max_p99_drift=2, p99_floor_ms=2)
    flat = [100.0] * 20
    spike = [100.0] * 10 + [400.0] + [100.0] * 9
    growing = [100.0 + 10 * i for i in range(20)]
    windows = [result(p99_ms=3.0), result(p99_ms=3.5)]
    assert gates.soak_findings(windows, flat, limits) == []
    assert gates.soak_findings(windows, spike, limits) == []
    [grew] = gates.soak_findings(windows, growing, limits)
    assert grew.rule == "memory-growth" and "over 50 MB" in grew.message
    [drift] = gates.soak_findings([result(p99_ms=3.0), result(p99_ms=9.0)], flat, limits)
    assert drift.rule == "latency-drift" and "3.00 ms to 9.00 ms" in drift.message
    tiny = [result(p99_ms=0.4), result(p99_ms=1.5)]  # under the floor: no verdict on ratios
    assert gates.soak_findings(tiny, flat, limits) == []


def test_the_load_report_masks_finding_messages(tmp_path: Path) -> None:
    from ci.contract import StageContext
    from ci.redact import Redactor
    from ci.result import Finding
    from ci.runner import Runner
    from ci.settings import load
    from ci.stages.load import write_report

    planted = "pg-PLANTED-value-42"
    settings = load(tmp_path, {"CIPIPE_WORKSPACE": str(tmp_path)})
    ctx = StageContext("load", settings, Runner(Redactor([planted]), echo=False))
    result = gates.LoadResult(10, 9, 0, 1, 0, 1.0, 10, 10, 1.0, 2.0, 3.0, 4.0)
    found = [Finding("load", f"errors from postgres://app:{planted}@db", rule="load-threshold")]
    markdown = write_report(ctx, result, gates.Thresholds(p99_ms=10, error_rate=0.01), found)
    text = markdown.read_text()
    assert planted not in text and "postgres://app:***@db" in text
    assert planted not in (ctx.artifacts_dir / "load.json").read_text()
