"""`[tool.pipeline.coverage]` read once into a typed, validated object."""

from __future__ import annotations

from dataclasses import dataclass

from ci.errors import ConfigError
from ci.settings import Section, Settings

# What measures: cargo-llvm-cov (source-based: rustc's -C instrument-coverage, read with the
# llvm-profdata/llvm-cov of rustc's LLVM major), or cargo-tarpaulin with its ptrace engine
# or its own LLVM engine. "ptrace" and "llvm" are the names of the tarpaulin engines the
# key took before there was a choice of tool; they still mean tarpaulin.
ENGINES = ("llvm-cov", "tarpaulin", "tarpaulin-llvm", "ptrace", "llvm")
TARPAULIN_ENGINE = {
    "tarpaulin": "ptrace",
    "tarpaulin-llvm": "llvm",
    "ptrace": "ptrace",
    "llvm": "llvm",
}
ON_DROP = ("warn", "fail")


@dataclass(frozen=True)
class CodecovConfig:
    """Where and how the report is uploaded when CODECOV_TOKEN is set."""

    url: str
    service: str
    slug: str
    flags: tuple[str, ...]
    name: str
    required: bool
    timeout: float  # seconds the whole upload (the CLI, its own retries included) may take


@dataclass(frozen=True)
class CoverageConfig:
    """The coverage gates and how the engine is run."""

    min_total: float
    critical: tuple[str, ...]
    max_drop: float
    on_drop: str
    base: str
    diff_min: float
    exclude_files: tuple[str, ...]
    doctests: bool
    engine: str  # one of ENGINES
    test_timeout: float
    follow_exec: bool
    target_subdir: str
    history_depth: int
    services: tuple[str, ...]
    llvm_bin: str  # llvm-cov engine: folder of llvm-profdata/llvm-cov; empty = find them
    codecov: CodecovConfig

    @property
    def tool(self) -> str:
        """The pinned tool that measures: cargo-llvm-cov or cargo-tarpaulin."""
        return "cargo-llvm-cov" if self.engine == "llvm-cov" else "cargo-tarpaulin"


def _percent(section: Section, key: str) -> float:
    value = section.number(key, minimum=0)
    if value > 100:
        raise ConfigError(
            f"[tool.pipeline] coverage.{key} (or $CIPIPE_COVERAGE__{key.upper()}): "
            f"expected a percentage from 0 to 100, got {value:g}"
        )
    return value


def engine_of(settings: Settings) -> str:
    """The coverage tool in use: "llvm-cov" or "tarpaulin" (what `.ci/setup` and
    `invoke tools.install --stages coverage` install)."""
    engine = settings.section("coverage").choice("engine", ENGINES)
    return "llvm-cov" if engine == "llvm-cov" else "tarpaulin"


def load(settings: Settings) -> CoverageConfig:
    """The validated configuration; ConfigError naming the key for a malformed value."""
    cov = settings.section("coverage")
    sub = cov.sub("codecov")
    subdir = cov.text("target_subdir").strip().strip("/")
    if not subdir or ".." in subdir.split("/"):
        raise ConfigError(
            "[tool.pipeline] coverage.target_subdir: expected a folder name inside the "
            f"target dir, got {cov.text('target_subdir')!r}"
        )
    return CoverageConfig(
        min_total=_percent(cov, "min_total"),
        critical=tuple(p.strip() for p in cov.strings("critical") if p.strip()),
        max_drop=_percent(cov, "max_drop"),
        on_drop=cov.choice("on_drop", ON_DROP),
        base=cov.text("base").strip(),
        diff_min=_percent(cov, "diff_min"),
        exclude_files=tuple(cov.strings("exclude_files")),
        doctests=cov.flag("doctests"),
        engine=cov.choice("engine", ENGINES),
        test_timeout=cov.number("test_timeout", minimum=1),
        follow_exec=cov.flag("follow_exec"),
        target_subdir=subdir,
        history_depth=cov.whole("history_depth", minimum=1),
        services=tuple(settings.section("integration").strings("services")),
        llvm_bin=cov.text("llvm_bin").strip(),
        codecov=CodecovConfig(
            url=sub.text("url").strip().rstrip("/"),
            service=sub.text("service").strip(),
            slug=sub.text("slug").strip(),
            flags=tuple(sub.strings("flags")),
            name=sub.text("name").strip(),
            required=sub.flag("required"),
            timeout=sub.number("timeout", minimum=1),
        ),
    )
