"""Verdicts, targets and reports of the bench stage: rows for every case (regression,
improvement, within threshold/noise, new, removed), targets that fail with numbers, the
markdown table is valid GFM, the JSON comparison, the configuration's bad values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ci import settings
from ci.bench import config, render
from ci.bench.compare import (
    Report,
    Verdict,
    apply_targets,
    fmt_bytes,
    fmt_time,
    parse_target,
    parse_targets,
    row,
    unknown_targets,
)
from ci.bench.stats import Change, Estimate
from ci.errors import ConfigError


def est(v: float) -> Estimate:
    return Estimate(v, v * 0.98, v * 1.02)


def rows() -> list:
    return [
        row(
            "book/insert",
            "ns",
            est(1000),
            est(1150),
            Change(0.15, 0.13, 0.17, True),
            0.1,
            compared=True,
        ),
        row(
            "book/sweep | 10",
            "ns",
            est(500),
            est(505),
            Change(0.01, -0.02, 0.03, False),
            0.1,
            compared=True,
        ),
        row(
            "risk/check",
            "ns",
            est(50),
            est(40),
            Change(-0.2, -0.22, -0.18, True),
            0.1,
            compared=True,
        ),
        row(
            "strategy/tick",
            "ns",
            est(80),
            est(84),
            Change(0.05, 0.04, 0.06, True),
            0.1,
            compared=True,
        ),
        row("engine/new", "ns", None, est(700), None, 0.1, compared=True),
        row("engine/old", "ns", est(300), None, None, 0.1, compared=True),
    ]


def report(on_regression: str = "warn") -> Report:
    return Report(
        "wall",
        0.10,
        on_regression,
        0.95,
        rows(),
        base_ref="main",
        base_commit="a" * 40,
        head_commit="b" * 40,
        settings={"quantile": 0.2, "rounds": 5},
    )


def test_every_case_is_a_row_with_its_verdict() -> None:
    verdicts = {r.name: r.verdict for r in rows()}
    assert verdicts == {
        "book/insert": Verdict.REGRESSION,
        "book/sweep | 10": Verdict.WITHIN_NOISE,
        "risk/check": Verdict.IMPROVEMENT,
        "strategy/tick": Verdict.WITHIN_THRESHOLD,
        "engine/new": Verdict.NEW,
        "engine/old": Verdict.REMOVED,
    }
    alone = row("x", "ns", None, est(1), None, 0.1, compared=False)
    assert alone.verdict is Verdict.MEASURED


def gfm_table(text: str) -> list[list[str]]:
    """The first GFM table of `text`, as cells; asserts the structure GitHub requires:
    a header, a delimiter row of dashes (optional colons) with as many cells, and every
    body row with as many cells (pipes inside cells escaped)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]] for line in lines]
    header, delim, *body = split
    assert len(delim) == len(header)
    assert all(re.fullmatch(r":?-{3,}:?", cell) for cell in delim), delim
    for cells in body:
        assert len(cells) == len(header), cells
    return [header, *body]


def test_markdown_is_a_valid_gfm_table_with_the_six_columns() -> None:
    md = render.markdown(report())
    table = gfm_table(md)
    assert table[0] == ["benchmark", "base", "head", "change", "confidence", "verdict"]
    by_name = {r[0]: r for r in table[1:]}
    assert by_name["book/insert"] == [
        "book/insert",
        "1 µs",
        "1.15 µs",
        "**+15.0%**",
        "95%: +13.0% to +17.0%",
        "**regression**",
    ]
    assert "book/sweep \\| 10" in by_name  # a pipe in a name does not break the table
    assert by_name["engine/new"][1] == "—" and by_name["engine/new"][5] == "new"
    assert by_name["engine/old"][2] == "—" and by_name["engine/old"][5] == "removed"
    assert "review required: 1 regression(s) over 10%: book/insert +15.0%" in md
    assert "`main` (aaaaaaaaaaaa)" in md


def test_fail_mode_headline_says_failed_and_a_clean_run_says_no_regression() -> None:
    assert render.headline(report("fail")).startswith("failed: 1 regression(s)")
    clean = Report("wall", 0.1, "warn", 0.95, rows()[1:], base_ref="main", base_commit="a" * 40)
    assert render.headline(clean) == "no regression over 10%"
    alone = Report(
        "wall", 0.1, "warn", 0.95, [row("x", "ns", None, est(5), None, 0.1, compared=False)]
    )
    assert "measured and recorded" in render.headline(alone)


def test_regression_finding_has_the_name_and_numbers() -> None:
    rep = report()
    line = render.regression_line(rep.regressions[0], rep)
    assert line == (
        "book/insert: +15.0% (1 µs → 1.15 µs; 95% interval +13.0% to +17.0%), "
        "over the 10% threshold"
    )


def test_json_comparison_round_trips_every_row() -> None:
    data = json.loads(json.dumps(report().to_dict()))
    assert data["regressions"] == ["book/insert"]
    first = data["rows"][0]
    assert first["verdict"] == "regression"
    assert first["change"] == {
        "percent": 15.0,
        "low_percent": 13.0,
        "high_percent": 17.0,
        "significant": True,
    }
    assert data["rows"][-1]["head"] is None


def test_text_table_lines_up() -> None:
    lines = render.text_table(report()).splitlines()
    assert lines[0].startswith("benchmark")
    assert set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + len(rows())


@pytest.mark.parametrize(
    ("text", "limit", "unit"),
    [
        ("risk/check_pass < 50ns", 50, "ns"),
        ("book/insert <= 2.5 us", 2500, "ns"),
        ("book/insert < 2µs", 2000, "ns"),
        ("x < 1 ms", 1e6, "ns"),
        ("instructions::risk::check < 900 instructions", 900, "instructions"),
    ],
)
def test_latency_targets_parse(text: str, limit: float, unit: str) -> None:
    target = parse_target(text, "latency_targets", memory=False)
    assert (target.limit, target.unit) == (pytest.approx(limit), unit)


def test_memory_limits_parse_binary_and_decimal_units() -> None:
    assert parse_target("a < 64MiB", "memory_limits", memory=True).limit == 64 * 1024**2
    assert parse_target("a < 1 GB", "memory_limits", memory=True).limit == 1e9


@pytest.mark.parametrize("text", ["risk/check_pass 50ns", "x < fast", "x < 5 parsecs", "< 5ns"])
def test_bad_targets_are_one_line_naming_the_key(text: str) -> None:
    with pytest.raises(
        ConfigError, match=r"bench\.latency_targets .*CIPIPE_BENCH__LATENCY_TARGETS"
    ):
        parse_target(text, "latency_targets", memory=False)
    with pytest.raises(ConfigError, match="two limits"):
        parse_targets(["a < 1ns", "a < 2ns"], "latency_targets", memory=False)


def test_a_breached_target_fails_with_the_numbers() -> None:
    latency = parse_targets(["book/insert < 1.1us", "risk/check < 60ns"], "l", memory=False)
    memory = parse_targets(["risk/check < 1MiB"], "m", memory=True)
    base = [
        r if r.name != "risk/check" else r.__class__(**{**r.__dict__, "peak_rss": 3 * 1024**2})
        for r in rows()
    ]
    out = {r.name: r for r in apply_targets(base, latency, memory, "wall")}
    assert out["book/insert"].breaches == (
        "book/insert: 1.15 µs exceeds its latency target 1.1 µs (book/insert < 1.1us)",
    )
    assert out["risk/check"].breaches == (
        "risk/check: peak RSS 3 MiB exceeds its memory limit 1 MiB (risk/check < 1MiB)",
    )
    rep = Report("wall", 0.1, "warn", 0.95, list(out.values()))
    assert len(rep.breaches) == 2
    assert "target missed" in render.markdown(rep)
    # instruction targets do not apply to wall-clock values and vice versa
    counts = parse_targets(["book/insert < 10 instructions"], "l", memory=False)
    assert apply_targets(rows(), counts, [], "wall")[0].breaches == ()


def test_targets_for_unknown_benchmarks_are_reported() -> None:
    latency = parse_targets(["book/renamed < 1us"], "l", memory=False)
    assert unknown_targets(latency, ["book/insert"]) == ["book/renamed"]


def test_formatting() -> None:
    assert fmt_time(57.1) == "57.1 ns"
    assert fmt_time(1234) == "1.23 µs"
    assert fmt_time(4.56e6) == "4.56 ms"
    assert fmt_time(2e9) == "2 s"
    assert fmt_bytes(512) == "512 B"
    assert fmt_bytes(12.3 * 1024**2) == "12.3 MiB"


def load(tmp_path: Path, *posargs: str, **env: str) -> config.BenchConfig:
    cfg = settings.load(tmp_path, {f"CIPIPE_BENCH__{k.upper()}": v for k, v in env.items()})
    return config.load(cfg, list(posargs))


def test_config_defaults_and_flags(tmp_path: Path) -> None:
    cfg = load(tmp_path)
    assert (cfg.mode, cfg.base, cfg.threshold, cfg.on_regression) == ("wall", None, 0.10, "warn")
    assert cfg.rounds == 5 and cfg.timing.sample_size == 20
    cfg = load(tmp_path, "--base", "main", "--mode", "instructions", "--threshold", "5")
    assert (cfg.mode, cfg.base, cfg.threshold) == ("instructions", "main", 0.05)
    assert load(tmp_path, base="origin/main").base == "origin/main"


@pytest.mark.parametrize(
    ("posargs", "env", "message"),
    [
        (
            (),
            {"threshold": "ten"},
            r"bench\.threshold \(or \$CIPIPE_BENCH__THRESHOLD\): expected a number",
        ),
        ((), {"on_regression": "shout"}, "expected one of warn, fail"),
        ((), {"quantile": "0.9"}, "expected 0 to 0.5"),
        ((), {"confidence": "2"}, "between 0.5 and 1"),
        (("--mode", "cycles"), {}, "invalid choice: 'cycles'"),
        (("--threshold", "x"), {}, "invalid float value: 'x'"),
        (("--threshold=-5",), {}, "a percentage of 0 or more"),
        (("--sample-size", "3"), {}, "at least 10"),
        (("--what",), {}, "unrecognized arguments: --what"),
    ],
)
def test_bad_configuration_is_one_line(
    tmp_path: Path, posargs: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load(tmp_path, *posargs, **env)
    assert "\n" not in str(err.value)
