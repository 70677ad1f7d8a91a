"""Issue 18, section 3: triggers judge the rolling window's aggregate (requests and
errors summed, latency from the merged histogram), a failed scrape keeps the last
good counters and counts as a failure, windows survive step changes, the final
watch is judged like a step, and the error comparison is an exact test with a budget
for the number of looks."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from deploy.rollout import analysis, stats
from deploy.rollout.metrics import Counters, Sample
from tests.unit.test_rollout_analysis import TH
from tests.unit.test_rollout_analysis import counted as series
from tests.unit.test_rollout_controller import Clock, FakeBackend, cfg, run


def test_alternating_failing_slices_fire_on_the_window_aggregate() -> None:
    # 19.2%-ish of requests failing, in 0% / 40% slices: no single sample is "clean"
    # evidence of health, the window as a whole fails 20%
    samples = series([(100, 0, 2), (100, 40, 2)] * 6)
    fired = analysis.triggers(samples, now=120, since=0, th=TH)
    assert fired is not None and fired.trigger == analysis.ERROR_RATE
    assert "20.0%" in fired.detail and "240/1200" in fired.detail


def test_a_brief_spike_under_the_window_rate_does_not_fire() -> None:
    samples = series([(100, 0, 2)] * 11 + [(100, 50, 2)])  # 50/1200 = 4.2% < 5%
    assert analysis.triggers(samples, now=120, since=0, th=TH) is None


def test_a_latency_breach_survives_a_step_change_without_traffic() -> None:
    # the sample taken at the moment of a step change has no requests: it must not
    # restart the window
    values = [(100, 0, 80.0)] * 15 + [(0, 0, 0.0)] + [(100, 0, 80.0)] * 15
    samples = series(values)
    fired = analysis.triggers(samples, now=310, since=0, th=TH)
    assert fired is not None and fired.trigger == analysis.LATENCY


def test_latency_is_read_from_the_window_merged_histogram() -> None:
    # 2% of the window's requests at 200 ms, spread over its samples: each sample's own
    # p99 is under 50 ms only when its few slow requests fall under its 1% tail
    values = [(98, 0, 2.0), (2, 0, 200.0)] * 15
    fired = analysis.triggers(series(values, step=10.0), now=300, since=0, th=TH)
    assert fired is not None and fired.trigger == analysis.LATENCY


class FlakyScrape(FakeBackend):
    """Green's /metrics does not answer between `down_from` and `down_to`."""

    down_from: float = 1e9
    down_to: float = 1e9

    def counters(self, colour: str, at: float, timeout: float) -> Counters | None:  # type: ignore[override]
        got = super().counters(colour, at, timeout)
        if colour == "green" and self.down_from <= at < self.down_to:
            return None
        return got


def test_a_failed_scrape_keeps_the_last_good_counters(tmp_path: Path) -> None:
    clock = Clock()
    backend = FlakyScrape(clock)
    backend.down_from, backend.down_to = 150.0, 155.0  # one scrape, during the 100% step
    out, _, ctl = run(tmp_path, backend, clock, cfg(tmp_path))
    assert out.ok, out.breach
    # no sample spans more than the gap: 2 intervals at 100% of 200 rps
    assert max(s.requests for s in ctl.samples["green"]) <= 2 * 5 * 200 + 1


def test_scrape_failures_count_as_a_health_signal(tmp_path: Path) -> None:
    clock = Clock()
    backend = FlakyScrape(clock)
    backend.down_from, backend.down_to = 1.0, 1e9  # never answers once traffic starts
    out, st, _ = run(tmp_path, backend, clock, cfg(tmp_path))
    assert not out.ok and out.breach is not None
    assert out.breach.trigger == analysis.HEALTH and "scrape" in out.breach.detail
    assert st.step == 0 and clock.now < 60  # within the first bake, not after a hold


class LateFault(FakeBackend):
    """Green fails `rate` of its requests from `at` on (the final watch)."""

    at: float = 1e9
    rate: float = 0.0

    def _advance(self) -> None:
        if self.clock.now >= self.at:
            self.error_rate = {**self.error_rate, "green": self.rate}
        super()._advance()


def test_the_final_watch_runs_the_relative_check(tmp_path: Path) -> None:
    clock = Clock()
    backend = LateFault(clock, error_rate={"blue": 0.001})
    backend.at, backend.rate = 3 * 60 + 1, 0.02  # 2%: under the 5% trigger, 20x blue
    out, st, _ = run(tmp_path, backend, clock, cfg(tmp_path))
    assert not out.ok and out.breach is not None, "promoted with 20x the old error rate"
    assert out.breach.trigger == analysis.RELATIVE_ERRORS
    assert ("stop", "blue") not in backend.calls and st.phase == "rolled_back"


def test_fisher_exact_test_matches_known_values() -> None:
    # the case: z-test p = 1e-5, Fisher's exact p = 0.0099
    assert stats.fisher_greater(2, 100, 0, 900).p_value == pytest.approx(0.0099, abs=5e-5)
    # 1/100 vs 0/900: exactly 1 in 10 that the single error lands on the new colour
    assert stats.fisher_greater(1, 100, 0, 900).p_value == pytest.approx(0.1)
    assert stats.fisher_greater(0, 100, 5, 900).p_value == 1.0
    assert stats.fisher_greater(0, 0, 5, 900).p_value == 1.0
    # large counts: no overflow, still exact enough
    assert stats.fisher_greater(300, 10_000, 100, 10_000).p_value < 1e-20


def _errors(n: int, requests: int, errors_at: set[int]) -> list[Sample]:
    return [Sample(at=i, requests=requests, errors=int(i in errors_at)) for i in range(n)]


def test_one_error_on_the_new_colour_is_no_evidence() -> None:
    new = _errors(10, 10, {4})  # 1/100
    old = _errors(10, 90, set())  # 0/900
    assert analysis.relative(new, old, TH, latency=False) is None


def test_the_relative_alpha_is_shared_by_the_looks() -> None:
    # p = 0.0099: significant at 1% for one look, not when 4 looks share the 1%
    new = _errors(10, 10, {2, 6})
    old = _errors(10, 90, set())
    assert analysis.judge(new, old, TH, 10, looks=1).outcome == "abort"
    assert analysis.judge(new, old, TH, 10, looks=4).outcome == "promote"
    loose = replace(TH, alpha=0.05)
    assert analysis.judge(new, old, loose, 10, looks=4).outcome == "abort"


def test_the_stats_benchmark_prints_rates_with_intervals(capsys: pytest.CaptureFixture) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_rollout_stats.py"
    spec = importlib.util.spec_from_file_location("bench_rollout_stats", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    assert bench.main(["--runs", "2", "--delay-runs", "1", "--rps", "20"]) == 0
    out = capsys.readouterr().out
    assert "false aborts (identical versions, 0.5% errors each): " in out
    assert "/2 = " in out and "95% Wilson interval" in out
    assert "detection (new version 3.0% errors vs 0.5%): 2/2" in out
    assert "trigger-to-fire delay" in out and "1 runs" in out
    with pytest.raises(SystemExit) as bad:
        bench.main(["--base-error", "2"])
    assert bad.value.code == 2
    assert "--base-error must be between 0 and 1" in capsys.readouterr().err
