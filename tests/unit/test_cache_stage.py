"""The stage cache as the runners use it: `execute` replays and remembers (and never for
a run with extra arguments, a failure, or inputs that changed during the run), the
`invoke ci` side (`cache_hits`, `CachingLauncher`), StageCache.replay/remember, and
per-package replay (affected.plan/remember)."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
from cache_world import World, make_world, set_path

from ci.cache import StageCache, affected
from ci.cache import files as files_mod
from ci.console import MaskedStream
from ci.graph import plan as flow_plan
from ci.parsers import TestCase as Case
from ci.pipeline import CachingLauncher, cache_hits
from ci.registry import StageSpec, get_stage
from ci.result import StageResult, Status, read_result, write_result
from ci.settings import load
from ci.stage import execute

STAGES = textwrap.dedent(
    """
    import os
    from pathlib import Path
    from ci.result import StageResult, Status

    def _count():
        counter = Path(os.environ["COUNTER"])
        counter.write_text(str(int(counter.read_text() if counter.exists() else 0) + 1))

    def ok(ctx):
        _count()
        art = ctx.settings.out_dir / ctx.name / "report.txt"
        art.parent.mkdir(parents=True, exist_ok=True)
        art.write_text("the report")
        arts = {"report": str(art)}
        return StageResult(ctx.name, Status.PASSED, 0, 0, "all good", artifacts=arts)

    def edits(ctx):
        _count()
        lib = ctx.settings.workspace / "core" / "src" / "lib.rs"
        lib.write_text(lib.read_text() + "// saved in the editor while the stage ran\\n")
        return StageResult(ctx.name, Status.PASSED, 0, 0, "all good")

    def fails(ctx):
        _count()
        return StageResult(ctx.name, Status.FAILED, 0, 0, "red")
    """
)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    w = make_world(tmp_path)
    set_path(monkeypatch, w)
    (tmp_path / "cachestages.py").write_text(STAGES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("COUNTER", str(tmp_path / "counter"))
    return w


def run(world: World, func: str, *posargs: str) -> tuple[dict, str]:
    spec = StageSpec("lint", "stand-in", f"cachestages:{func}", cache=True, reads=())
    stream = io.StringIO()
    execute("lint", world.root / "project", posargs, env=world.env, stream=stream, stages=(spec,))
    result = json.loads((world.root / "out" / "lint.json").read_text())
    return result, stream.getvalue()


def runs(world: World) -> int:
    return int((world.root / "counter").read_text())


def test_unchanged_inputs_replay_the_green_result_and_its_artifacts(world: World) -> None:
    first, out = run(world, "ok")
    assert not first["cached"] and "cache: running (no earlier green run recorded)" in out
    again, out = run(world, "ok")
    assert runs(world) == 1, "the stage ran again"
    assert again["cached"]["run_id"] and "cached: replayed the green result" in out
    assert Path(again["artifacts"]["report"]).read_text() == "the report"
    (world.ws / "core/src/lib.rs").write_text("pub fn changed() {}\n")
    changed, out = run(world, "ok")
    assert runs(world) == 2 and not changed["cached"] and "changed: workspace" in out


def test_runs_with_extra_arguments_are_neither_replayed_nor_stored(world: World) -> None:
    run(world, "ok")
    subset, out = run(world, "ok", "--only", "fmt")
    assert runs(world) == 2 and not subset["cached"]  # not replayed
    assert "a run with extra arguments is never cached" in out
    (world.ws / "app/src/lib.rs").write_text("pub fn other() {}\n")
    run(world, "ok", "--only", "fmt")
    full, _ = run(world, "ok")
    assert runs(world) == 4 and not full["cached"]  # the subset run was not stored


def test_a_result_whose_inputs_changed_during_the_run_is_not_stored(world: World) -> None:
    """#5: the key is read again when the stage ends; a pass is filed only under the
    tree it ran on. Checking out the old tree later must not replay it."""
    lib = world.ws / "core/src/lib.rs"
    tree_it_started_on = lib.read_text()
    _, out = run(world, "edits")
    assert "result not stored: its inputs changed while it ran (changed: workspace)" in out
    lib.write_text(tree_it_started_on)  # back to the tree the stage was keyed on
    result, _ = run(world, "ok")
    assert runs(world) == 2 and not result["cached"]


def test_a_failing_stage_consults_the_cache_and_is_never_stored(world: World) -> None:
    for n in (1, 2):
        result, out = run(world, "fails")
        assert result["status"] == "failed" and not result["cached"] and runs(world) == n
        # consulted: the lookup missed and said why
        assert "cache: running (no earlier green run recorded)" in out
    assert not list((world.root / "cache").glob("lint/*/entry.json"))


def test_a_stage_that_cannot_be_keyed_runs_and_says_why(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_mod, "MAX_HASHED_FILES", 2)
    _, out = run(world, "ok")
    _, out = run(world, "ok")
    assert runs(world) == 2 and "cache: not cacheable: more than 2 files" in out


def test_replay_and_remember(world: World) -> None:
    cache = world.cache()
    spec = get_stage("lint")
    inputs = cache.inputs(spec)
    assert inputs is not None
    out = world.root / "out"
    art = out / "lint" / "clippy.json"
    art.parent.mkdir(parents=True)
    art.write_text("[]")
    write_result(out, StageResult("lint", Status.FAILED, 3.0, 60, "red"))
    cache.remember("lint", inputs, out, "run-1", "abc")
    assert cache.lookup("lint", inputs) is None  # a failure is never remembered
    write_result(
        out, StageResult("lint", Status.PASSED, 3.0, 60, "ok", artifacts={"clippy": str(art)})
    )
    cache.remember("lint", inputs, out, "run-2", "abc")
    entry = cache.lookup("lint", inputs)
    assert entry is not None and entry.run_id == "run-2"
    other = world.root / "other"
    replayed = cache.replay(entry, other, 60, 0.0)
    assert replayed.cached["run_id"] == "run-2" and replayed.cached["duration_s"] == "3.000"
    assert Path(replayed.artifacts["clippy"]).read_text() == "[]"
    assert "replayed from the stage cache" in (other / "lint.log").read_text()
    written = read_result(other, "lint")
    assert written is not None and written.cached
    cache.remember("lint", inputs, other, "run-3", "abc")  # a replay is never stored again
    again = cache.lookup("lint", inputs)
    assert again is not None and again.run_id == "run-2"


class Started:
    """The launcher beneath: records the stages it was asked to start."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def start(self, name: str, console: Path):
        self.names.append(name)
        return None


def test_invoke_ci_replays_hits_without_starting_them(world: World) -> None:
    cfg = load(world.root / "project", world.env)
    cache = world.cache()
    inputs = cache.inputs(get_stage("lint"))
    assert inputs is not None
    out_dir = cfg.out_dir
    write_result(out_dir, StageResult("lint", Status.PASSED, 2.0, 60, "ok"))
    cache.remember("lint", inputs, out_dir, "run-1", "abc")
    (out_dir / "lint.json").unlink()
    steps = flow_plan(["lint", "unit"], cfg.budget, cfg.timeout)
    shown = io.StringIO()
    found, hits = cache_hits(cfg, steps, MaskedStream(shown, str))
    assert found is not None and list(hits) == ["lint"]
    inner = Started()
    launcher = CachingLauncher(inner, found, hits, out_dir, cfg.budget)  # type: ignore[arg-type]
    console = world.root / "lint.console"
    handle = launcher.start("lint", console)
    assert handle.poll() == 0 and inner.names == []
    replayed = read_result(out_dir, "lint")
    assert replayed is not None and replayed.cached["run_id"] == "run-1"
    launcher.start("unit", world.root / "unit.console")
    assert inner.names == ["unit"]
    # a security setting changed: lint is still a hit (it does not read [security])
    env = {**world.env, "CIPIPE_SECURITY__WARN_AGE_DAYS": "1"}
    _, hits = cache_hits(load(world.root / "project", env), steps, MaskedStream(shown, str))
    assert list(hits) == ["lint"]


def case(suite: str, status: str = "passed") -> Case:
    return Case(suite=suite, name=f"{suite}_works", status=status)


def test_per_package_plan_and_remember(world: World) -> None:
    spec = get_stage("unit")
    meta = world.meta()
    cache: StageCache = world.cache()
    first = affected.plan(cache, spec, meta, world.ws, ("lib",))
    assert first is not None and first.to_test == ["core", "app", "gen"]
    cases = [case("core"), case("app"), case("gen")]
    assert affected.remember(cache, first, cases, True, "r1", "c", ran=frozenset()) == 3
    second = affected.plan(world.cache(), spec, meta, world.ws, ("lib",))
    assert second is not None and second.to_test == [] and len(second.replayed_cases) == 3
    # a change in app: core is replayed; gen has a build script (keyed on every file)
    (world.ws / "app/src/lib.rs").write_text("pub fn app2() {}\n")
    third = affected.plan(world.cache(), spec, meta, world.ws, ("lib",))
    assert (
        third is not None and third.to_test == ["app", "gen"] and list(third.replayed) == ["core"]
    )
    # a failed case or a run that was not green records nothing
    assert (
        affected.remember(
            world.cache(), third, [case("app", "failed"), case("gen")], True, "r", "c"
        )
        == 1
    )
    assert affected.remember(world.cache(), third, [case("app")], False, "r", "c") == 0


def test_per_package_results_are_not_stored_when_inputs_changed_during_the_run(
    world: World,
) -> None:
    """#5 for per-package replay: keys are computed again before storing."""
    spec = get_stage("unit")
    cache = world.cache()
    pkg_plan = affected.plan(cache, spec, world.meta(), world.ws, ("lib",))
    assert pkg_plan is not None
    (world.ws / "app/src/lib.rs").write_text("pub fn edited_mid_run() {}\n")
    said: list[str] = []
    stored = affected.remember(
        cache, pkg_plan, [case("core"), case("app"), case("gen")], True, "r", "c", say=said.append
    )
    assert stored == 1  # core only: app and gen (build script) read the edited file
    assert said and "not stored for app, gen" in said[0]
