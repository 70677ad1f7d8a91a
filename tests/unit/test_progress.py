"""What `invoke ci` shows: the plain/GitHub line display and the live rich table, driven
through the executor with scripted stand-in stages on a simulated clock."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from ci.flow import Executor
from ci.graph import Step
from ci.live import LiveDisplay
from ci.progress import LineDisplay
from tests.unit.test_executor import PIPELINE, FakeLauncher, Script, World


def _run(tmp_path: Path, scripts: dict[str, Script], steps: list[Step], display) -> World:
    world = World(tmp_path)
    ex = Executor(
        steps,
        tmp_path,
        FakeLauncher(world, scripts),
        clock=world.clock,
        sleep=world.sleep,
        install_signals=False,
        display=display,
    )
    ex.run()
    return world


def test_github_groups_every_stage_and_repeats_a_failed_tail_without_commands(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    steps = PIPELINE[:2]
    scripts = {"lint": Script(0.2, "passed"), "security": Script(0.4, "failed")}
    _run(tmp_path, scripts, steps, LineDisplay(out, github=True))
    text = out.getvalue()
    # a passing stage is grouped (collapsed) too
    assert re.search(r"::group::lint output \(1 lines\): passed in 0\.\ds", text)
    assert "::group::security output (1 lines): failed" in text
    tail = text.split("── last lines of security ──", 1)[1]
    token = re.search(r"::stop-commands::(\w+)", tail)
    assert token, "the tail must not re-issue workflow commands"
    assert "security output line" in tail.split(f"::{token[1]}::")[0]
    assert "── last lines of lint" not in text


def test_github_flattens_a_stages_own_groups(tmp_path: Path) -> None:
    console = tmp_path / "lint.console.log"
    console.write_text("::group::fmt\n+ cargo fmt\n::endgroup::\n::error file=a.rs::x\n")
    out = io.StringIO()
    display = LineDisplay(out, github=True)
    from ci.result import StageResult, Status

    step = Step("lint", (), True, 60)
    display.finished(step, StageResult("lint", Status.FAILED, 1, 60), 1.0, console)
    lines = out.getvalue().splitlines()
    group = lines.index("::endgroup::")
    inside = lines[2:group]  # after the verdict line and the group line
    assert inside == ["── fmt", "+ cargo fmt", "::error file=a.rs::x"]
    stop = next(i for i, x in enumerate(lines) if x.startswith("::stop-commands::"))
    assert lines[:stop].count("::endgroup::") == 1  # the tail repeats it with commands off


def test_heartbeat_every_15s_with_the_last_line(tmp_path: Path) -> None:
    out = io.StringIO()
    steps = [Step("unit", (), True, 20)]
    _run(tmp_path, {"unit": Script(40.0)}, steps, LineDisplay(out))
    beats = [line for line in out.getvalue().splitlines() if line.startswith("… unit")]
    assert beats == [
        "… unit running 15s / 20s: unit output line",
        "… unit running 30s / 20s — over budget: unit output line",
    ]


def _console(width: int = 120) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=width, color_system=None), buf


def test_live_table_shows_elapsed_against_budget_and_the_failed_tail(tmp_path: Path) -> None:
    console, buf = _console()
    world = World(tmp_path)
    steps = PIPELINE
    scripts = {
        "lint": Script(3.0),
        "security": Script(2.0, "failed"),
        "unit": Script(1.0),
        "integration": Script(1.0),
    }
    display = LiveDisplay(console, steps, clock=world.clock)
    ex = Executor(
        steps,
        tmp_path,
        FakeLauncher(world, scripts),
        clock=world.clock,
        sleep=world.sleep,
        install_signals=False,
        display=display,
    )
    snapshots: list[str] = []
    world.at(1.0, lambda: snapshots.append(_text(display.render(), console.width)))
    ex.run()
    mid = snapshots[0]
    assert re.search(r"lint\s+running\s+0\.9s / 60s", mid)
    assert re.search(r"unit\s+waiting\s+/ 120s.*after lint", mid)
    final = _text(display.render(), console.width)
    assert re.search(r"✔ lint\s+passed\s+3\.0s / 60s", final)
    assert re.search(r"✘ security\s+failed\s+2\.0s / 120s", final)
    assert "4/4 stages done" in final
    out = buf.getvalue()
    assert "security failed: last 1 of 1 lines" in out
    assert "security output line" in out


def test_live_row_turns_red_over_budget_and_never_squeezes_names(tmp_path: Path) -> None:
    console, _ = _console(width=90)
    step = Step("integration", (), True, 10)
    display = LiveDisplay(console, [step])
    log = tmp_path / "c.log"
    log.write_text("x" * 500 + "\n")
    from ci.progress import Running

    display.started(step, log)
    display.tick([Running(step, 12.0, log)])
    text = _text(display.render(), 90)
    assert "integration" in text and "12.0s / 10s" in text
    display.close()


def _text(renderable, width: int) -> str:
    console = Console(width=width, color_system=None, file=io.StringIO())
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()
