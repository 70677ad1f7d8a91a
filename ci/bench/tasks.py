"""`invoke bench` (the bench stage, e.g. `invoke bench --base main`) and
`invoke bench.history` (a trend chart per benchmark from the history store).

The functions here are plain (settings in, message out) and tested directly;
`collection(root)` wraps them as invoke tasks for tasks.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci import settings as settings_mod
from ci.errors import ConfigError, HistoryError, NoHistoryYet, task_errors
from ci.result import atomic_write
from ci.settings import Settings

if TYPE_CHECKING:  # the chart and the history load only when a task runs (invoke starts fast)
    from ci.reports.data import BenchTrend


def collect(
    settings: Settings,
    mode: str,
    *,
    branch: str | None,
    machine: str | None,
    limit: int = 200,
) -> tuple[list[BenchTrend], str]:
    """The recorded series of every benchmark of `mode` (on `branch` and `machine`; None:
    any), and where the history lives. Runs on uncommitted changes are not part of it."""
    from ci.bench import trends
    from ci.bench.compare import MODES, UNITS
    from ci.bench.record import KIND, suite
    from ci.history import open_store

    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: one of {', '.join(MODES)}")
    name_suite = suite(mode)
    with open_store(settings, create=False) as store:
        where = store.location
        names: set[str] = set()
        for stored in store.runs(KIND, branch=branch, limit=limit):
            if stored.run.dirty or stored.run.meta.get("mode") != mode:
                continue
            if machine is not None and stored.run.machine.id != machine:
                continue
            names.update(m.name for m in store.measurements(stored.id, name_suite))
        charts = []
        for name in sorted(names):
            points = store.series(name_suite, name, branch=branch, machine=machine, limit=limit)
            if points:
                charts.append(trends.trend(name, UNITS[mode], points))
    return charts, where


def history_chart(
    settings: Settings,
    out: Path | None = None,
    *,
    mode: str = "wall",
    branch: str | None = None,
    all_machines: bool = False,
    limit: int = 200,
) -> str:
    """Write the trend chart HTML (default `<output_dir>/bench/history.html`); returns
    the line to print. HistoryError when nothing is recorded to draw."""
    from ci.bench import trends
    from ci.history import this_machine

    machine = None if all_machines else this_machine(settings.section("history").text("machine"))
    try:
        charts, where = collect(
            settings,
            mode,
            branch=branch,
            machine=machine.id if machine else None,
            limit=limit,
        )
    except NoHistoryYet:
        raise HistoryError(
            "no history recorded yet: run `nox -s bench` (on a committed tree) first"
        ) from None
    if not charts:
        scope = f" on branch {branch}" if branch else ""
        where_machine = f" on this machine ({machine.label})" if machine else ""
        raise HistoryError(
            f"no {mode} benchmark runs of committed code recorded{scope}{where_machine} in "
            f"{where}: run `nox -s bench` first (or --all-machines / another --branch)"
        )
    target = out or settings.out_dir / "bench" / "history.html"
    context = {
        "mode": mode,
        "branch": branch or "all branches",
        "machine": machine.label if machine else "all machines",
        "history": where,
    }
    text = trends.page(charts, f"Benchmark history ({mode})", context)
    try:
        atomic_write(target, text)
    except OSError as err:
        raise HistoryError(f"cannot write {target}: {err.strerror or err}") from None
    runs = max(len(c.points) for c in charts)
    flagged = sum(trends.regressions(c) for c in charts)
    return (
        f"wrote {target}: {len(charts)} benchmark(s), up to {runs} runs each, "
        f"{flagged} regression(s) marked"
    )


def collection(root: Path) -> Any:
    """The `bench` invoke collection: `invoke bench` runs the stage, `bench.history`
    draws the trend chart."""
    from invoke import Collection, Context, task
    from invoke.exceptions import Exit

    @task(
        default=True,
        help={
            "base": "git ref to compare with (built in a temporary worktree)",
            "mode": "wall (criterion, default) or instructions (gungraun under valgrind)",
            "filter": "only benchmarks whose name contains this",
        },
    )
    def run(c: Context, base: str = "", mode: str = "", filter: str = "") -> None:
        """Run the benchmarks (the bench stage); --base REF compares base and head."""
        from ci.stage import execute

        args = [*(["--base", base] if base else []), *(["--mode", mode] if mode else [])]
        args += ["--filter", filter] if filter else []
        code, line = execute("bench", root, args)
        if code:
            raise Exit(line, code=code)
        print(line)

    @task(
        help={
            "out": "the HTML file to write (default: <output_dir>/bench/history.html)",
            "mode": "wall (default) or instructions",
            "branch": "only runs on this branch (default: every branch)",
            "all_machines": "every machine's runs (default: this machine's only)",
            "limit": "the most recent N runs (default 200)",
        }
    )
    def history(
        c: Context,
        out: str = "",
        mode: str = "wall",
        branch: str = "",
        all_machines: bool = False,
        limit: int = 200,
    ) -> None:
        """Draw a trend chart per benchmark (self-contained HTML), regressions marked."""
        with task_errors():
            line = history_chart(
                settings_mod.load(root),
                Path(out) if out else None,
                mode=mode,
                branch=branch or None,
                all_machines=all_machines,
                limit=limit,
            )
        print(line)

    ns = Collection("bench")
    ns.add_task(run, name="run", default=True)
    ns.add_task(history, name="history")
    return ns
