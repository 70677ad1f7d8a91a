"""`invoke ci` as a person sees it: live progress on a terminal (a real pty), plain lines
elsewhere; every run recorded; `invoke metrics` after a few runs; and the HTML report of
real runs opened in headless Chromium (Debian's, driven by Playwright), its charts
counted and a screenshot saved."""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, run_invoke

STAGES = "lint,unit"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SCREENSHOTS = os.environ.get("CIPIPE_TEST_SCREENSHOTS", "")  # keep the PNGs somewhere


def _tty_run(args: list[str], env: dict[str, str], timeout: float = 600) -> tuple[int, str]:
    """Run `invoke <args>` with stdout and stderr on a pseudo-terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=timeout), b"".join(chunks).decode("utf-8", "replace")


def _env(fixture_env, name: str) -> dict[str, str]:
    env = fixture_env(name, TERM="xterm-256color", COLUMNS="120")
    env.pop("CI", None)  # .ci/run sets it: the live view is for people at a terminal
    return env


def test_live_progress_on_a_terminal_plain_lines_elsewhere(fixture_env, tmp_path: Path) -> None:
    env = _env(fixture_env, "clean")
    code, screen = _tty_run(["ci", "--stages", STAGES], env)
    assert code == 0, screen
    assert "\x1b[" in screen and "\x1b[?25l" in screen  # drawn live, cursor hidden
    screen = ANSI.sub("", screen)
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] .*lint.*running", screen), "no spinner while running"
    assert re.search(r"✔.*lint.*passed.*\d+\.\ds / 60s", screen)
    assert "2/2 stages done" in screen
    table = screen[screen.rindex("stage  ") :]
    assert re.search(r"lint\s+PASS", table) and re.search(r"unit\s+PASS", table)
    assert "history: recorded run" in screen

    plain = run_invoke(["ci", "--stages", STAGES], env)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "▶ lint started (budget 60s, hard limit 180s)" in plain.stdout
    assert "\x1b[" not in plain.stdout


def test_failed_stage_tail_in_the_live_view(fixture_env) -> None:
    code, screen = _tty_run(["ci", "--stages", STAGES], _env(fixture_env, "test_fault"))
    screen = ANSI.sub("", screen)
    assert code == 1, screen
    assert re.search(r"unit failed: last \d+ of \d+ lines", screen)
    assert "planted fault: 2 + 2 is not 5" in screen
    assert re.search(r"✘.*unit.*failed", screen)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is missing: bash .ci/setup browser (apt-get install chromium)"
    return found


def _bench_charts(page: Any) -> dict[str, dict[str, Any]]:
    """Each benchmark chart as drawn on screen: its points' centres (CSS pixels), its
    plot's height, and the colour the browser paints its flagged points."""
    charts = {}
    for chart in page.locator('svg[data-chart="bench"]').all():
        centres = []
        for point in chart.locator("circle.point").all():
            box = point.bounding_box()
            assert box, "a point that is not drawn"
            centres.append((box["x"] + box["width"] / 2, box["y"] + box["height"] / 2))
        flagged = chart.locator("circle.flagged")
        charts[chart.get_attribute("data-series") or ""] = {
            "centres": centres,
            "height": (chart.bounding_box() or {"height": 0})["height"],
            "flagged": flagged.count(),
            "flag-colour": flagged.first.evaluate("e => getComputedStyle(e).fill")
            if flagged.count()
            else "",
        }
    return charts


def _open(report: Path, shot: Path) -> dict[str, Any]:
    """Open the report from disk in headless Chromium; count the drawn marks; screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 1000})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            counts = {
                kind: page.locator(f'svg[data-chart="{kind}"]').count()
                for kind in (
                    "durations",
                    "ci-time",
                    "stage-trend",
                    "bench",
                    "coverage",
                    "deployments",
                )
            }
            for mark in ("rect.bar", "line.budget", "circle.point", "circle.deploy"):
                counts[mark] = page.locator(mark).count()
            counts["ci-points"] = page.locator('svg[data-chart="ci-time"] circle.point').count()
            counts["nodata"] = page.locator(".nodata").count()
            # drawn, not just present: the bars have a real size on screen
            box = page.locator("rect.bar").first.bounding_box()
            counts["bar-height"] = int(box["height"]) if box else 0
            counts["bench-charts"] = _bench_charts(page)
            page.screenshot(path=str(shot), full_page=True)
            counts["requests"] = len([u for u in requests if not u.startswith("file:")])
        finally:
            browser.close()
    return counts


def _keep(shot: Path) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(SCREENSHOTS) / shot.name)


def test_html_report_of_real_runs_and_metrics(fixture_env, tmp_path: Path) -> None:
    env = fixture_env("clean")
    for _ in range(2):
        r = run_invoke(["ci", "--stages", STAGES], env)
        assert r.returncode == 0, r.stdout + r.stderr
    fault = run_invoke(["ci", "--stages", STAGES], fixture_env("test_fault"))
    assert fault.returncode == 1

    r = run_invoke(["report", "--html"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    report = tmp_path / "out" / "report.html"
    assert f"html report: {report}" in r.stdout
    counts = _open(report, tmp_path / "report-real-runs.png")
    _keep(tmp_path / "report-real-runs.png")
    assert counts["durations"] == counts["ci-time"] == counts["stage-trend"] == 1
    assert counts["rect.bar"] == 2 and counts["line.budget"] == 2  # lint and unit vs budgets
    assert counts["ci-points"] == 3  # one point per recorded run
    assert counts["circle.point"] == 3 + 2 * 3  # + each stage in each run
    assert counts["bench"] == counts["coverage"] == counts["deployments"] == 0
    assert counts["nodata"] == 3  # said honestly, not drawn empty
    assert counts["bar-height"] > 5 and counts["requests"] == 0  # no server, no CDN
    assert (tmp_path / "report-real-runs.png").stat().st_size > 20_000

    m = run_invoke(["metrics"], env)
    assert m.returncode == 0, m.stdout + m.stderr
    lines = m.stdout.splitlines()
    assert lines[1].split()[:5] == ["metric", "value", "target", "status", "basis"]
    rows = {line.split("  ")[0]: line for line in lines[3:]}
    assert "no full `invoke ci` run recorded" in rows["average CI time"]  # subsets only
    assert "no data yet" in rows["deployment frequency"]


def test_html_report_draws_bench_coverage_and_deployments(fixture_env, tmp_path: Path) -> None:
    """Seeded history for the stages and flows that record these (bench, coverage,
    deploy): the charts the real runs above cannot have yet."""
    from ci import settings as settings_mod
    from ci.history import Machine, Measurement, RunInfo, open_store, utc_now
    from ci.result import StageResult, Status, write_result

    env = fixture_env("clean")
    cfg = settings_mod.load(ROOT, env)
    now = utc_now()
    # Two benchmarks four orders of magnitude apart (4 ns, 10 µs), each moving ~10%;
    # runs on uneven days (0, 1, 2, 3, 9 days ago ... oldest first) to see time spacing.
    ages = (12, 11, 10, 9, 0)
    fast = (4.0, 4.3, 3.9, 4.6, 4.1)
    slow = (10_000, 10_800, 9_700, 10_400, 11_000)
    with open_store(cfg) as store:
        for i in range(5):
            at = now - timedelta(days=ages[i])
            info = RunInfo("bench", "c" * 40, "main", "r", Machine("m", "m"), at, at, "passed")
            verdict = "regression" if i == 3 else "within noise"
            store.record(
                info,
                [
                    Measurement("bench.wall", "tick/parse", fast[i], "ns", {"verdict": verdict}),
                    Measurement("bench.wall", "book/rebuild", slow[i], "ns", {"verdict": "ok"}),
                ],
            )
            at = now - timedelta(days=5 - i)
            cov = RunInfo("coverage", "c" * 40, "main", "r", Machine("m", "m"), at, at, "passed")
            store.record(cov, [Measurement("coverage", "total", 78 + i, "%")])
            dep = store.start_deployment("production", f"v0.{i}", "d", trigger="manual", at=at)
            store.finish_deployment(dep, "failed" if i == 2 else "succeeded", at=at)
    write_result(cfg.out_dir, StageResult("lint", Status.PASSED, 2.0, 60))
    r = run_invoke(["report", "--html"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    shot = tmp_path / "report-seeded.png"
    counts = _open(tmp_path / "out" / "report.html", shot)
    _keep(shot)
    assert counts["coverage"] == counts["deployments"] == 1
    assert counts["bench"] == 2  # one small chart per benchmark
    assert counts["circle.deploy"] == 5 and counts["circle.point"] == 2 * 5 + 5
    charts = counts["bench-charts"]
    assert set(charts) == {"tick/parse", "book/rebuild"}
    for name, chart in charts.items():
        ys = [y for _, y in chart["centres"]]
        # readable: each line spans a good part of its own chart on screen (a shared
        # linear axis drew the 4 ns line flat on the floor, within a pixel)
        assert max(ys) - min(ys) > 0.3 * chart["height"], (name, ys, chart["height"])
        xs = [x for x, _ in chart["centres"]]
        # placed by time: the 9-day gap before the last run is 9 times a 1-day step
        assert xs[4] - xs[3] == pytest.approx(9 * (xs[1] - xs[0]), rel=0.05), xs
    assert charts["tick/parse"]["flagged"] == 1 and charts["book/rebuild"]["flagged"] == 0
    assert charts["tick/parse"]["flag-colour"] == "rgb(220, 38, 38)"  # the regression in red
    m = run_invoke(["metrics"], env)
    assert re.search(r"change failure rate\s+20\.0%\s+< 5%\s+missed", m.stdout), m.stdout
    assert re.search(r"test coverage\s+82\.0%\s+> 80%\s+met", m.stdout), m.stdout


@pytest.mark.parametrize("corrupt", ["result", "history"])
def test_bad_input_is_one_line_and_overwrites_nothing(fixture_env, tmp_path, corrupt) -> None:
    env = fixture_env("clean")
    out = tmp_path / "out"
    none = run_invoke(["report", "--html"], env)
    assert none.returncode == 30 and none.stderr.strip().count("\n") == 0, none.stderr
    assert "run `invoke ci`" in none.stderr
    out.mkdir()
    (out / "lint.json").write_text('{"stage": "lint"')
    if corrupt == "history":
        (out / "lint.json").write_text(
            '{"stage": "lint", "status": "passed", "duration_s": 1, "budget_s": 60}'
        )
        Path(env["CIPIPE_HISTORY__PATH"]).write_bytes(b"garbage, not sqlite")
    (out / "summary.md").write_text("old\n")
    r = run_invoke(["report", "--html"], env)
    assert r.returncode == (30 if corrupt == "result" else 7), r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    assert (out / "summary.md").read_text() == "old\n" and not (out / "report.html").exists()
    m = run_invoke(["metrics"], env)
    if corrupt == "history":
        assert m.returncode == 7 and "not an SQLite database" in m.stderr
        assert Path(env["CIPIPE_HISTORY__PATH"]).read_bytes() == b"garbage, not sqlite"
