"""`invoke ci` runs in the history store: one run of kind "ci" per flow, one measurement
per stage (suite "stage": its duration in seconds, with its status, budget and whether
it blocks in `extra`; a stage replayed from the cache also names the run it came from
and that run's time). The metrics (average CI time) and the HTML report's duration
charts read them back from there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ci.history import Measurement, RunInfo, open_store
from ci.result import StageResult
from ci.settings import Settings

KIND = "ci"
SUITE = "stage"


def measurements(results: Sequence[StageResult]) -> list[Measurement]:
    """One measurement per stage result: duration, status, budget, blocking."""
    return [
        Measurement(
            SUITE,
            r.stage,
            round(r.duration_s, 3),
            "s",
            {
                "status": r.status.value,
                "budget": r.budget_s,
                "blocking": r.blocking,
                # replayed: the value is the replay's time; the run it came from took this
                **(
                    {"cached_from": r.cached.get("run_id", ""), "ran_s": r.earned_s}
                    if r.cached
                    else {}
                ),
            },
        )
        for r in results
    ]


def run_status(results: Sequence[StageResult], interrupted: bool) -> str:
    """passed | failed | interrupted, as the gate sees it."""
    if interrupted:
        return "interrupted"
    ok = all(r.status.ok or not r.blocking for r in results)
    return "passed" if ok else "failed"


def meta(stages: Sequence[str], full: bool, flow: str = "ci") -> dict[str, Any]:
    """What distinguishes this run: the flow, its stages, and whether it was the whole
    pipeline (only those count for the average CI time)."""
    return {"flow": flow, "stages": list(stages), "full": full}


def record(
    settings: Settings, info: RunInfo, results: Sequence[StageResult], interrupted: bool
) -> str:
    """Store the finished run; returns the line saying where."""
    finished = info.finished(run_status(results, interrupted))
    with open_store(settings) as store:
        run_id = store.record(finished, measurements(results))
        where = store.location
    return f"history: recorded run {run_id[:12]} ({len(results)} stages) in {where}"
