"""The stage registry: the one list nox sessions and `invoke ci`'s graph are generated from.

Adding a stage is its module (`run(ctx) -> StageResult`) plus one `StageSpec` here:
noxfile.py makes the session, `invoke ci` puts it in the graph, budgets and hard limits
come from `[tool.pipeline.budgets]` / `[tool.pipeline.timeouts]`.

The graph follows the specification's workflow: lint and security start at once, unit
needs lint, integration and coverage need unit (coverage runs the integration tests
too, on its own services and in its own target dir). Locally unit starts beside lint and
integration as soon as lint passes, beside unit; a red need still blocks them (see
`starts_after`).
Security is its own job that blocks the merge, not the tests: an unreachable advisory
database never stops the tests from reporting.
"""

from __future__ import annotations

from dataclasses import dataclass

from ci.errors import ConfigError


@dataclass(frozen=True)
class StageSpec:
    """A pipeline stage and everything the runners need to know about it."""

    name: str
    description: str  # one line: `nox -l` and `invoke --list` show it
    target: str  # "module:function", imported lazily so `nox -l` stays fast
    needs: tuple[str, ...] = ()
    blocking: bool = True  # a failure fails the pipeline (False: reported, "advisory")
    in_ci: bool = True  # part of `invoke ci`'s default graph
    # False: fail-fast never cancels it (a rollout must finish or roll back, never stop
    # mid-shift); Ctrl-C and its own hard limit still apply.
    interruptible: bool = True
    # Pinned PyPI requirements: the session gets its own reused virtualenv with them and
    # the stage runs in it. Empty: no virtualenv (the stage only drives cargo and binaries).
    python: tuple[str, ...] = ()
    # Secret environment variables the stage's child processes may see. Everything else
    # that looks secret is stripped from cargo's, build scripts' and tests' environment.
    pass_env: tuple[str, ...] = ()
    # Keys of `StageResult.outputs` it hands to later stages (an image digest, a version).
    outputs: tuple[str, ...] = ()
    # Runs alone: nothing else runs beside it in `invoke ci` (wall-clock benchmarks and
    # load tests must not share the cores with a build).
    exclusive: bool = False
    # A green result may be replayed when every input is unchanged (ci/cache). Bench is,
    # on the machine that measured it (its cache inputs name the machine and the base
    # commit); load, stress and fuzz never are (they probe the running system). The stage
    # module may define `cache_inputs(settings) -> dict | None` for inputs beyond the
    # workspace's files.
    cache: bool = False
    # The `[tool.pipeline]` tables its verdict depends on (beyond the top-level keys and
    # its own hard limit): only these enter its cache key, so changing a security setting
    # never re-runs the tests. None: every table (the safe default for a new stage).
    # tests/unit/test_cache_settings.py checks the declaration against the code.
    reads: tuple[str, ...] | None = None
    # The stages that must pass before it *starts* (None: all its needs). It may start
    # before its other needs end: its verdict still waits for them, and when one does not
    # pass it is stopped (or its finished run set aside) and reported blocked, exactly as
    # if it had waited. Integration starts beside unit this way: the two share no state
    # and on two cores the wall time is the longer one, not the sum.
    starts_after: tuple[str, ...] | None = None


STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "lint",
        "Formatting (cargo fmt --check) and lints (cargo clippy -D warnings).",
        "ci.stages.lint:run",
        cache=True,
        reads=("cargo",),
    ),
    StageSpec(
        "security",
        "Advisories (cargo audit), dependency policy (cargo deny) and secret scan.",
        "ci.stages.security:run",
        python=("detect-secrets==1.5.0", "xxhash==4.1.0", "tomli-w==1.2.0"),
        cache=True,
        reads=("security",),
    ),
    StageSpec(
        "unit",
        "Library and binary tests (cargo test, or cargo nextest with [unit] runner; JUnit) "
        "plus doc tests.",
        "ci.stages.unit:run",
        needs=("lint",),
        starts_after=(),  # builds and tests beside lint; a red lint still blocks it
        cache=True,
        reads=("unit", "cargo"),
    ),
    StageSpec(
        "integration",
        "Integration tests (cargo test --test '*') against real Postgres and Redis.",
        "ci.stages.integration:run",
        needs=("unit",),
        starts_after=(),  # services and tests beside lint and unit; both still gate it
        python=("docker==7.2.0",),
        cache=True,
        reads=("integration", "services", "cargo"),
    ),
    StageSpec(
        "bench",
        "Benchmarks (criterion; --base REF compares base and head, --mode instructions).",
        "ci.stages.bench:run",
        needs=("integration",),
        exclusive=True,
        cache=True,  # replayed only on the same machine, code, settings and base commit
        reads=("bench", "history"),
    ),
    StageSpec(
        "coverage",
        "Line coverage of the whole test suite (cargo llvm-cov, or tarpaulin): total, "
        "critical paths, baseline drop, changed lines.",
        "ci.stages.coverage:run",
        needs=("unit",),
        # codecov-cli: Codecov's official uploader (its own venv: it pins click < 8.3).
        python=("docker==7.2.0", "codecov-cli==11.3.1"),
        outputs=("verdict", "total"),
        cache=True,
        reads=("coverage", "unit", "integration", "services", "history", "cargo"),
    ),
    StageSpec(
        "load",
        "The release binary on real Postgres and Redis at a fixed rate; p99 and error gates.",
        "ci.stages.load:run",
        in_ci=False,
        exclusive=True,
        python=("docker==7.2.0",),
    ),
    StageSpec(
        "fuzz",
        "Coverage-guided fuzzing of the workspace's fuzz targets, time-boxed; crashes saved.",
        "ci.stages.fuzz:run",
        in_ci=False,
    ),
    StageSpec(
        "stress",
        "Highest sustainable request rate (ramp), or a soak for memory growth and drift.",
        "ci.stages.stress:run",
        in_ci=False,
        exclusive=True,
        python=("docker==7.2.0",),
    ),
    StageSpec(
        "e2e",
        "End-to-end suite against a running service: nox -s e2e -- --url URL [--smoke].",
        "ci.stages.e2e:run",
        in_ci=False,  # needs a deployed service: `invoke deploy.staging` runs it
        python=("pytest==9.2.0", "requests==2.34.2"),
        outputs=("url", "suite", "tests"),
    ),
)


def get_stage(name: str, stages: tuple[StageSpec, ...] = STAGES) -> StageSpec:
    """The registered stage called `name`; ConfigError listing the known ones otherwise."""
    for spec in stages:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in stages)
    raise ConfigError(f"unknown stage {name!r}; known stages: {known}")
