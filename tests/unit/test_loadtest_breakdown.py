"""The per-phase latency breakdown of a load run: two /metrics scrapes of the service
become one row per phase, with the machine's load average beside them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ci.errors import ConfigError
from ci.loadtest import breakdown
from ci.prometheus import Histogram, histograms, quantile
from ci.stages.load import _route

DATA = Path(__file__).parent / "data" / "loadtest"


def phase(name: str, counts: list[tuple[str, int]], total: float) -> str:
    lines = [f'order_phase_seconds_bucket{{phase="{name}",le="{le}"}} {n}' for le, n in counts]
    lines.append(f'order_phase_seconds_sum{{phase="{name}"}} {total}')
    return "\n".join(lines) + "\n"


BEFORE = (
    phase("write", [("0.0005", 10), ("0.001", 10), ("+Inf", 10)], 0.004)
    + phase("queue", [("0.0005", 0), ("0.001", 0), ("+Inf", 0)], 0.0)
    + 'http_request_duration_seconds_bucket{route="/orders",method="POST",le="0.001"} 5\n'
    + 'http_request_duration_seconds_bucket{route="/orders",method="POST",le="+Inf"} 5\n'
    + 'http_request_duration_seconds_sum{route="/orders",method="POST"} 0.004\n'
    + 'sequencer_batch_size_bucket{le="1"} 10\nsequencer_batch_size_bucket{le="+Inf"} 10\n'
    + "sequencer_batch_size_sum 10\n"
)
AFTER = (
    # 100 more writes: 50 under 0.5 ms, 50 between 0.5 and 1 ms, 60 ms in all
    phase("write", [("0.0005", 60), ("0.001", 110), ("+Inf", 110)], 0.064)
    + phase("queue", [("0.0005", 0), ("0.001", 0), ("+Inf", 0)], 0.0)
    + 'http_request_duration_seconds_bucket{route="/orders",method="POST",le="0.001"} 5\n'
    + 'http_request_duration_seconds_bucket{route="/orders",method="POST",le="+Inf"} 105\n'
    + 'http_request_duration_seconds_sum{route="/orders",method="POST"} 0.304\n'
    + 'http_request_duration_seconds_bucket{route="/book/{symbol}",method="GET",le="+Inf"} 7\n'
    + 'sequencer_batch_size_bucket{le="1"} 60\nsequencer_batch_size_bucket{le="+Inf"} 110\n'
    + "sequencer_batch_size_sum 160\n"
)


def test_rows_are_what_happened_between_the_scrapes() -> None:
    split = breakdown.breakdown(BEFORE, AFTER, ("/orders", "POST"), (0.5, 0.75))
    rows = {r.phase: r for r in split.rows}
    # nothing queued during the run: no row rather than a row of zeros
    assert set(rows) == {"write", "http"}
    write = rows["write"]
    assert (write.per, write.count) == ("batch", 100)
    assert write.mean_ms == pytest.approx(0.6)
    assert write.p50_ms == pytest.approx(0.5)  # the 50th of 100 closes the first bucket
    assert write.p90_ms == pytest.approx(0.9)
    # the server's view of the route only (the GET /book series is another route)
    http = rows["http"]
    assert (http.per, http.count, http.mean_ms) == ("request", 100, pytest.approx(3.0))
    assert http.p99_ms == pytest.approx(1.0)  # in +Inf: the highest finite bound
    assert split.mean_batch == pytest.approx(1.5)
    assert (split.load_start, split.load_end) == (0.5, 0.75)


def test_table_names_the_load_average_and_orders_rows_by_the_path() -> None:
    split = breakdown.breakdown(BEFORE, AFTER, ("/orders", "POST"), (1.234, 2.0))
    lines = breakdown.table(split, breakdown.PATH_ORDER)
    assert lines[0] == (
        "load average (1 min) 1.23 at the start, 2.00 at the end; mean batch 1.50 requests"
    )
    assert [line.split()[0] for line in lines[2:]] == ["http", "write"]
    assert lines[3].split()[1:] == ["batch", "100", "0.600", "0.500", "0.900", "0.990"]


def test_a_service_without_the_families_gives_no_rows() -> None:
    split = breakdown.breakdown("up 1\n", "up 1\n", ("/orders", "POST"), (0.1, 0.2))
    assert split.rows == () and split.mean_batch is None
    assert breakdown.table(split)[0].endswith("mean batch -")


def test_json_round_trip_and_refusal() -> None:
    split = breakdown.breakdown(BEFORE, AFTER, ("/orders", "POST"), (0.5, 0.75))
    assert breakdown.Breakdown.from_json(split.to_json()) == split
    with pytest.raises(ValueError, match="not a latency breakdown"):
        breakdown.Breakdown.from_json('{"rows": 3}')


def test_histogram_difference_survives_a_restart() -> None:
    old = Histogram(((0.001, 10.0), (math.inf, 12.0)), 0.02)
    new = Histogram(((0.001, 3.0), (math.inf, 4.0)), 0.005)  # counters went down
    assert new.since(old) == new
    assert Histogram().mean is None and Histogram().quantile(0.5) is None
    assert quantile(0.5, [(0.001, 1.0), (math.inf, 1.0)]) == pytest.approx(0.0005)


def test_real_scrapes_of_the_service() -> None:
    """Two scrapes of the release binary around a load run (kept as golden files)."""
    before = (DATA / "metrics-before.txt").read_text()
    after = (DATA / "metrics-after.txt").read_text()
    split = breakdown.breakdown(before, after, ("/orders", "POST"), (0.0, 0.0))
    rows = {r.phase: r for r in split.rows}
    assert {"http", "sequenced", "queue", "batch", "write", "commit"} <= set(rows)
    assert rows["http"].count == rows["sequenced"].count == rows["queue"].count
    assert rows["batch"].count == rows["write"].count == rows["commit"].count
    total = histograms(after, "order_phase_seconds", lambda labels: labels.get("phase"))
    assert total["sequenced"].count >= rows["sequenced"].count
    # a request's time in the sequencer is part of its time in the server
    assert rows["sequenced"].mean_ms is not None and rows["http"].mean_ms is not None
    assert rows["sequenced"].mean_ms < rows["http"].mean_ms


def test_route_setting() -> None:
    assert _route("post /orders") == ("/orders", "POST")
    with pytest.raises(ConfigError, match="METHOD /path"):
        _route("/orders")
