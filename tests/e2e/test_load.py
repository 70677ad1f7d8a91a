"""`nox -s load` and `nox -s stress` on the reference service: the release binary on real
Postgres and Redis. Fault switches of the service make each gate red with the number
named; a service that never becomes healthy is one line and leaves nothing running.

The machine is shared and noisy, so a test never depends on how fast it is: where a run
must pass, its latency limit is generous (the gate itself is proven red by injected
latency far above the default limit); capacity limits come from the injected latency and
the connection count, which no machine load changes."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import ROOT, run_nox

from .leftovers import assert_nothing_left

SHORT = ("--", "--rate", "200", "--seconds", "3")


def reference(fixture_env, **extra: str) -> dict[str, str]:
    return fixture_env(
        "clean", CIPIPE_WORKSPACE=str(ROOT), CIPIPE_LOAD__WARMUP_SECONDS="1", **extra
    )


def result(env: dict[str, str], stage: str) -> dict:
    return json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / f"{stage}.json").read_text())


def test_load_passes_and_records_the_figures(fixture_env) -> None:
    env = reference(fixture_env, CIPIPE_LOAD__P99_MS="500")
    r = run_nox(["load"], env, *SHORT)
    assert r.returncode == 0, r.stdout[-3000:]
    data = result(env, "load")
    assert data["status"] == "passed"
    figures = json.loads(
        Path(data["artifacts"]["log"]).with_name("load").joinpath("load.json").read_text()
    )
    assert figures["requests"] == 600 and figures["error_rate"] == 0
    assert 0 < figures["p99_ms"] < 500 and figures["peak_rss_mb"] > 0
    markdown = Path(data["artifacts"]["markdown"]).read_text()
    assert "### Load test: passed" in markdown
    # Where the time went, from the service's own histograms, with the load average.
    folder = Path(data["artifacts"]["log"]).with_name("load")
    split = json.loads(folder.joinpath("breakdown.json").read_text())
    rows = {r["phase"]: r for r in split["rows"]}
    assert {"http", "sequenced", "queue", "batch", "write", "commit"} <= set(rows)
    assert rows["http"]["count"] == rows["sequenced"]["count"] == 600
    assert 0 < rows["sequenced"]["mean_ms"] < rows["http"]["mean_ms"]
    assert figures["load_start"] >= 0 and split["load_start"] == figures["load_start"]
    assert "Where the time went" in markdown and "catch_up" in markdown
    assert_nothing_left(Path(data["artifacts"]["log"]))


def test_injected_latency_fails_on_p99(fixture_env) -> None:
    env = reference(fixture_env, TS_FAULT_LATENCY_MS="25")
    r = run_nox(["load"], env, *SHORT)
    assert r.returncode != 0
    [finding] = result(env, "load")["findings"]
    assert finding["message"].startswith("p99 latency ") and "over 10 ms" in finding["message"]


def test_injected_errors_fail_on_the_error_rate(fixture_env) -> None:
    env = reference(fixture_env, TS_FAULT_ERROR_RATE="0.2")
    r = run_nox(["load"], env, *SHORT)
    assert r.returncode != 0
    messages = [f["message"] for f in result(env, "load")["findings"]]
    assert any(m.startswith("error rate ") and "over 1%" in m and "5xx" in m for m in messages)


def test_unhealthy_service_is_one_line_and_nothing_is_left(fixture_env) -> None:
    env = reference(fixture_env, TS_FAULT_UNHEALTHY="1", CIPIPE_LOAD__STARTUP_TIMEOUT="3")
    r = run_nox(["load"], env, *SHORT)
    assert r.returncode != 0 and "Traceback" not in r.stdout + r.stderr
    data = result(env, "load")
    assert data["status"] == "error"
    assert "was not healthy after 3s (HTTP 503)" in data["summary"]
    assert_nothing_left(
        Path(data["artifacts"]["log"])
        if "log" in data["artifacts"]
        else Path(env["CIPIPE_OUTPUT_DIR"]) / "load.log"
    )


def test_bad_threshold_is_one_line(fixture_env) -> None:
    env = reference(fixture_env, CIPIPE_LOAD__P99_MS="fast")
    r = run_nox(["load"], env, *SHORT)
    assert r.returncode != 0 and "Traceback" not in r.stdout + r.stderr
    assert (
        "load.p99_ms (or $CIPIPE_LOAD__P99_MS): expected a number" in result(env, "load")["summary"]
    )


def test_stress_reports_the_highest_sustainable_rate(fixture_env) -> None:
    env = reference(
        fixture_env,
        CIPIPE_STRESS__START_RATE="200",
        CIPIPE_STRESS__FACTOR="2",
        CIPIPE_STRESS__MAX_RATE="800",
        CIPIPE_STRESS__STEP_SECONDS="2",
        CIPIPE_STRESS__MIN_RATE="100",
        CIPIPE_STRESS__P99_MS="1000",
    )
    r = run_nox(["stress"], env)
    assert r.returncode == 0, r.stdout[-3000:]
    md = Path(result(env, "stress")["artifacts"]["markdown"]).read_text()
    assert [line.split("|")[1].strip() for line in md.splitlines()[6:]] == ["200", "400", "800"]
    data = result(env, "stress")
    assert "highest sustainable rate 800 req/s" in data["summary"]
    assert "the ceiling 800 req/s held" in data["summary"]


def test_stress_finds_the_breaking_point_of_a_slow_service(fixture_env) -> None:
    # 5 ms added latency and 2 connections: at most ~400 req/s can be answered in time
    env = reference(
        fixture_env,
        TS_FAULT_LATENCY_MS="5",
        CIPIPE_STRESS__CONNECTIONS="2",
        CIPIPE_STRESS__START_RATE="100",
        CIPIPE_STRESS__FACTOR="2",
        CIPIPE_STRESS__MAX_RATE="3200",
        CIPIPE_STRESS__STEP_SECONDS="2",
        CIPIPE_STRESS__MIN_RATE="100",
        CIPIPE_STRESS__P99_MS="1000",
    )
    r = run_nox(["stress"], env)
    data = result(env, "stress")
    assert data["status"] == "passed", r.stdout[-3000:]
    best = float(data["summary"].split("highest sustainable rate ")[1].split(" ")[0])
    assert 100 <= best < 800, data["summary"]


def test_soak_holds_a_rate_in_windows(fixture_env) -> None:
    env = reference(
        fixture_env,
        CIPIPE_STRESS__SOAK_RATE="150",
        CIPIPE_STRESS__WINDOW_SECONDS="2",
        CIPIPE_STRESS__P99_MS="1000",
    )
    r = run_nox(["stress"], env, "--", "--soak", "--seconds", "4")
    assert r.returncode == 0, r.stdout[-3000:]
    data = result(env, "stress")
    assert "150 req/s for 4 s in 2 window(s)" in data["summary"]


def test_invoke_nightly_runs_its_stages_as_one_flow(fixture_env) -> None:
    from helpers import run_invoke

    env = reference(
        fixture_env,
        CIPIPE_NIGHTLY__STAGES="load,stress",
        CIPIPE_LOAD__SECONDS="2",
        CIPIPE_LOAD__P99_MS="1000",
        CIPIPE_STRESS__START_RATE="100",
        CIPIPE_STRESS__MAX_RATE="200",
        CIPIPE_STRESS__FACTOR="2",
        CIPIPE_STRESS__STEP_SECONDS="1",
        CIPIPE_STRESS__MIN_RATE="50",
        CIPIPE_STRESS__P99_MS="1000",
    )
    r = run_invoke(["nightly"], env, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:]
    table = r.stdout[r.stdout.index("stage ") :]
    assert [line.split()[0] for line in table.splitlines()[2:4]] == ["load", "stress"]
    bad = run_invoke(["nightly"], {**env, "CIPIPE_NIGHTLY__STAGES": "load,moon"})
    assert bad.returncode != 0 and "unknown stage(s) moon" in bad.stderr
