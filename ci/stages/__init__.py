"""The stage registry: the one list `nox` sessions and `invoke ci` are built from.

A later stage plugs in by adding one `StageSpec` here (and its module); neither
the executor nor the noxfile changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ci.errors import ConfigError


@dataclass(frozen=True)
class StageSpec:
    """A pipeline stage: its name, what it needs first, and where its code lives."""

    name: str
    description: str
    target: str  # "module:function", imported lazily
    needs: tuple[str, ...] = ()
    blocking: bool = True
    in_ci: bool = True  # part of `invoke ci`


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "lint",
        "Formatting (cargo fmt --check) and lints (cargo clippy -D warnings).",
        "ci.stages.lint:run",
    ),
    StageSpec(
        "security",
        "Advisories (cargo audit), dependency policy (cargo deny) and secret scan.",
        "ci.stages.security:run",
    ),
    StageSpec(
        "unit",
        "Library and binary tests (cargo nextest, JUnit) plus doc tests.",
        "ci.stages.unit:run",
        needs=("lint",),
    ),
    StageSpec(
        "integration",
        "Integration tests (cargo test --test '*') against real Postgres and Redis.",
        "ci.stages.integration:run",
        needs=("unit", "security"),
    ),
)


def get_stage(name: str) -> StageSpec:
    """The registered stage called `name`; ConfigError listing the known ones otherwise."""
    for spec in STAGES:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in STAGES)
    raise ConfigError(f"unknown stage {name!r}; known stages: {known}")
