"""How tarpaulin is called and what its real output (golden logs) says; the stage's
configuration and options."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci import settings
from ci.coverage import tarpaulin
from ci.coverage.config import load
from ci.errors import ConfigError
from ci.stages.coverage import parse_options

DATA = Path(__file__).parent / "data" / "coverage"
ROOT = Path(__file__).resolve().parents[2]


def config(**env: str):
    return load(settings.load(ROOT, {"CIPIPE_COVERAGE__ENGINE": "tarpaulin", **env}))


def test_command_runs_every_test_kind_into_its_own_target_dir() -> None:
    cfg = config(CIPIPE_COVERAGE__EXCLUDE_FILES="tests/*,benches/*")
    argv = tarpaulin.command(
        "/bin/cargo-tarpaulin",
        cfg,
        target_dir=Path("/t/coverage"),
        output_dir=Path("/scratch"),
        extra=["--features", "x"],
    )
    assert argv[:3] == ["/bin/cargo-tarpaulin", "tarpaulin", "--workspace"]
    joined = " ".join(argv)
    assert "--engine ptrace" in joined
    llvm = tarpaulin.command(
        "t",
        config(CIPIPE_COVERAGE__ENGINE="tarpaulin-llvm"),
        target_dir=Path("/t"),
        output_dir=Path("/o"),
    )
    assert " --engine llvm " in " ".join(llvm)
    assert "--out Xml --out Html --output-dir /scratch" in joined
    assert "--target-dir /t/coverage --skip-clean --no-fail-fast" in joined
    assert "--run-types Tests --run-types Doctests" in joined
    assert "--exclude-files tests/* --exclude-files benches/*" in joined
    assert "--follow-exec" not in argv
    assert argv[-2:] == ["--features", "x"]
    env = tarpaulin.environment(cfg, Path("/t/coverage"))
    assert env == {"CARGO_TARGET_DIR": "/t/coverage", "RUSTC_BOOTSTRAP": "1"}


def test_without_doc_tests_no_bootstrap() -> None:
    cfg = config(CIPIPE_COVERAGE__DOCTESTS="false", CIPIPE_COVERAGE__FOLLOW_EXEC="true")
    argv = tarpaulin.command("t", cfg, target_dir=Path("/t"), output_dir=Path("/o"))
    assert "Doctests" not in argv and "--follow-exec" in argv
    assert "RUSTC_BOOTSTRAP" not in tarpaulin.environment(cfg, Path("/t"))


def test_failed_tests_with_their_panic() -> None:
    text = (DATA / "tarpaulin-failed.log").read_text()
    failed = tarpaulin.failed_tests(text)
    assert [(t.name, t.binary, t.message) for t in failed] == [
        (
            "postgres_accepts_connections",
            "services",
            "DATABASE_URL is not set (tests/services.rs:7:53)",
        ),
        ("redis_answers_ping", "services", "REDIS_URL is not set (tests/services.rs:7:53)"),
    ]
    assert str(tarpaulin.counts(text)) == "4 passed, 2 failed, 1 doc tests"
    assert tarpaulin.first_error(text) == "Test failed during run"


def test_a_test_binary_that_died_names_the_test_it_died_in() -> None:
    text = (DATA / "tarpaulin-died.log").read_text()
    [died] = tarpaulin.failed_tests(text)
    assert died.name == "graceful_shutdown_lets_in_flight_request_finish"
    assert died.binary == "api"
    assert died.message == tarpaulin.DIED
    assert tarpaulin.counts(text).passed == 9  # only the binary that finished reports


def test_a_build_error_is_the_compiler_line_with_its_place() -> None:
    text = (DATA / "tarpaulin-build-error.log").read_text()
    assert tarpaulin.failed_tests(text) == []
    assert tarpaulin.first_error(text) == "error: expected expression, found `;` (src/lib.rs:6:25)"


def test_should_panic_tests_are_not_mistaken_for_dead_ones() -> None:
    text = "test tests::rejects - should panic ... ok\ntest tests::x ... ignored, slow\n"
    assert tarpaulin.failed_tests(text) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CIPIPE_COVERAGE__MIN_TOTAL": "eighty"},
            "coverage.min_total (or $CIPIPE_COVERAGE__MIN_TOTAL): expected a number",
        ),
        ({"CIPIPE_COVERAGE__MIN_TOTAL": "120"}, "expected a percentage from 0 to 100, got 120"),
        (
            {"CIPIPE_COVERAGE__MAX_DROP": "-1"},
            "coverage.max_drop (or $CIPIPE_COVERAGE__MAX_DROP): expected a number >= 0",
        ),
        ({"CIPIPE_COVERAGE__DIFF_MIN": "lots"}, "coverage.diff_min"),
        (
            {"CIPIPE_COVERAGE__ON_DROP": "panic"},
            "coverage.on_drop (or $CIPIPE_COVERAGE__ON_DROP): expected one of warn, fail",
        ),
        ({"CIPIPE_COVERAGE__ENGINE": "gdb"}, "expected one of llvm-cov, tarpaulin, tarpaulin-llvm"),
        (
            {"CIPIPE_COVERAGE__TARGET_SUBDIR": "../escape"},
            "coverage.target_subdir: expected a folder name",
        ),
        ({"CIPIPE_COVERAGE__CODECOV__TIMEOUT": "0"}, "coverage.codecov.timeout"),
        ({"CIPIPE_COVERAGE__CODECOV__ATTEMPTS": "4"}, "unknown key 'coverage.codecov.attempts'"),
        ({"CIPIPE_COVERAGE__MIN_TOTL": "80"}, "unknown key 'coverage.min_totl'"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(**env)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_reference_configuration() -> None:
    cfg = config()
    assert cfg.min_total == 80 and cfg.max_drop == 2 and cfg.on_drop == "warn"
    assert "crates/trading-core/src/risk.rs" in cfg.critical
    assert cfg.services == ("postgres", "redis")  # as the integration stage
    assert cfg.codecov.url == "https://ingest.codecov.io"


def test_options() -> None:
    assert parse_options([]).base is None
    opts = parse_options(["--base", "origin/main", "--", "--features", "x"])
    assert (opts.base, opts.cobertura, opts.tarpaulin) == ("origin/main", None, ["--features", "x"])
    assert parse_options(["--cobertura", "c.xml"]).cobertura == Path("c.xml")
    with pytest.raises(ConfigError, match="coverage: unrecognized arguments: --frobnicate"):
        parse_options(["--frobnicate"])
