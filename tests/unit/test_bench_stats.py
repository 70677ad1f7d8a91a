"""The statistics of the bench comparison on synthetic and golden criterion samples:
identical sides are within noise, a real slowdown is measured to within a point, a
noisy machine's added time (preemption) does not move the low quantile."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ci.bench import stats
from ci.bench.compare import Verdict, verdict_of

DATA = Path(__file__).parent / "data" / "bench" / "criterion"


def side(cost: float, rounds: int = 5, n: int = 20, seed: int = 1, noisy: float = 0.0):
    """Per-iteration times of a benchmark costing `cost` ns: small jitter, plus with
    probability `noisy` a preempted sample (2x to 10x slower)."""
    rng = random.Random(seed)
    out = []
    for _ in range(rounds):
        values = []
        for _ in range(n):
            x = cost * (1 + abs(rng.gauss(0, 0.01)))
            if rng.random() < noisy:
                x *= rng.uniform(2, 10)
            values.append(x)
        out.append(values)
    return out


def test_quantile_interpolates_between_order_statistics() -> None:
    assert stats.quantile([4, 1, 3, 2], 0.0) == 1
    assert stats.quantile([4, 1, 3, 2], 1.0) == 4
    assert stats.quantile([1, 2, 3, 4], 0.5) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        stats.quantile([], 0.5)


def test_per_iteration_divides_times_by_iterations_and_drops_empty_samples() -> None:
    assert stats.per_iteration([2, 4, 0], [200, 440, 7]) == [100, 110]


def test_identical_sides_are_within_noise() -> None:
    change = stats.compare_wall(side(1000, seed=1), side(1000, seed=2), 0.2, 0.95, "x")
    assert abs(change.ratio) < 0.01
    assert change.low <= 0.0 <= change.high or abs(change.ratio) < 0.01
    assert verdict_of(change, 0.10) in (Verdict.WITHIN_NOISE, Verdict.WITHIN_THRESHOLD)


@pytest.mark.parametrize("slowdown", [0.05, 0.15, 0.30])
def test_a_slowdown_is_measured_to_within_a_point(slowdown: float) -> None:
    base = side(1000, seed=3)
    head = side(1000 * (1 + slowdown), seed=4)
    change = stats.compare_wall(base, head, 0.2, 0.95, "x")
    assert change.ratio == pytest.approx(slowdown, abs=0.01)
    assert change.significant and change.low > 0
    assert change.low <= change.ratio <= change.high


def test_preempted_samples_do_not_move_the_low_quantile() -> None:
    """A third of head's samples hit by interference: still within noise."""
    change = stats.compare_wall(side(1000, seed=5), side(1000, seed=6, noisy=0.35), 0.2, 0.95, "x")
    assert abs(change.ratio) < 0.02
    assert verdict_of(change, 0.10) is not Verdict.REGRESSION


def test_the_interval_is_reproducible_for_the_same_data() -> None:
    a, b = side(1000, seed=7), side(1100, seed=8)
    assert stats.compare_wall(a, b, 0.2, 0.95, "n") == stats.compare_wall(a, b, 0.2, 0.95, "n")


def test_round_to_round_drift_widens_the_interval() -> None:
    """Rounds that disagree (drift) make the change less certain than rounds that agree."""
    steady = [[1000.0 + i for i in range(20)] for _ in range(5)]
    drifting = [[1000.0 * (1 + 0.03 * r) + i for i in range(20)] for r in range(5)]
    tight = stats.compare_wall(steady, steady, 0.2, 0.95, "x")
    wide = stats.compare_wall(steady, drifting, 0.2, 0.95, "x")
    assert (wide.high - wide.low) > (tight.high - tight.low)


def test_estimate_of_golden_criterion_samples() -> None:
    sample = json.loads((DATA / "risk_check_pass" / "new" / "sample.json").read_text())
    values = stats.per_iteration(sample["iters"], sample["times"])
    est = stats.estimate([values], 0.2, 0.95, "risk/check_pass")
    assert min(values) <= est.low <= est.value <= est.high <= max(values)


def test_instruction_counts_compare_against_the_noise_floor() -> None:
    same = stats.compare_counts(52012, 52015, 0.002)
    assert not same.significant and verdict_of(same, 0.10) is Verdict.WITHIN_NOISE
    slower = stats.compare_counts(52012, 59812, 0.002)
    assert slower.percent == pytest.approx(14.997, abs=0.01)
    assert verdict_of(slower, 0.10) is Verdict.REGRESSION
    five = stats.compare_counts(52012, 54612, 0.002)
    assert verdict_of(five, 0.10) is Verdict.WITHIN_THRESHOLD
    faster = stats.compare_counts(59812, 52012, 0.002)
    assert verdict_of(faster, 0.10) is Verdict.IMPROVEMENT
    with pytest.raises(ValueError):
        stats.compare_counts(0, 1, 0.002)


def test_verdict_needs_both_threshold_and_significance() -> None:
    big_but_noisy = stats.Change(0.2, -0.05, 0.45, significant=False)
    assert verdict_of(big_but_noisy, 0.10) is Verdict.WITHIN_NOISE
    small_but_sure = stats.Change(0.04, 0.03, 0.05, significant=True)
    assert verdict_of(small_but_sure, 0.10) is Verdict.WITHIN_THRESHOLD
    big_and_sure = stats.Change(0.12, 0.11, 0.13, significant=True)
    assert verdict_of(big_and_sure, 0.10) is Verdict.REGRESSION


def test_on_a_saturated_machine_the_minimum_still_measures_the_code() -> None:
    """80% of head's samples slowed by neighbours: a percentile is fooled, the minimum
    (the default statistic) is not; a real 15% slowdown under the same load is found."""
    base, busy = side(1000, seed=9, noisy=0.3), side(1000, seed=10, noisy=0.8)
    assert stats.compare_wall(base, busy, 0.2, 0.95, "x").ratio > 0.10  # fooled
    same = stats.compare_wall(base, busy, 0.0, 0.95, "x")
    assert abs(same.ratio) < 0.02 and verdict_of(same, 0.10) is not Verdict.REGRESSION
    slower = stats.compare_wall(base, side(1150, seed=11, noisy=0.8), 0.0, 0.95, "x")
    assert slower.ratio == pytest.approx(0.15, abs=0.02)
    assert verdict_of(slower, 0.10) is Verdict.REGRESSION
