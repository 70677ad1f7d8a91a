"""A replay that fails (an entry evicted between its lookup and its replay) never escapes:
the stage runs for real instead, or the executor records an internal error, and every
stage still ends with a result. Replays write through the redactor."""

from __future__ import annotations

import io
import json
import shutil
import textwrap
from pathlib import Path

import pytest
from helpers import stand_in_project

from ci import stage as stage_mod
from ci.cache import Entry, StageCache
from ci.cache.inputs import Inputs
from ci.cache.store import CacheStore
from ci.flow import Executor, Step
from ci.pipeline import CachingLauncher
from ci.redact import Redactor
from ci.registry import StageSpec
from ci.result import StageResult, Status, read_result
from ci.settings import load

from .test_stage_execute import TOKEN  # the planted token the secrets baseline knows

INPUTS = Inputs({"workspace": "w1", "toolchain": "t1"})

FAKE = textwrap.dedent(
    """
    from ci.result import StageResult, Status

    def ok(ctx):
        ctx.runner.say("really ran")
        return StageResult(ctx.name, Status.PASSED, 0, 0, "ran for real")
    """
)


def stored_entry(root: Path, summary: str = "fmt: formatted") -> CacheStore:
    """A store holding one green lint entry for INPUTS, with a junit artifact."""
    store = CacheStore(root)
    art = root.parent / "junit.xml"
    art.write_text("<testsuites/>")
    result = StageResult("lint", Status.PASSED, 12.5, 60, summary=summary)
    result.artifacts = {"junit": str(art)}
    store.save(
        "lint", INPUTS.key, result.to_dict(), INPUTS.parts, {"junit": art}, run_id="r1", commit="c"
    )
    return store


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    stand_in_project(tmp_path, monkeypatch, "replaystages", FAKE)
    # the inputs need git; the replay path under test does not
    monkeypatch.setattr(StageCache, "inputs", lambda self, spec: INPUTS)
    monkeypatch.setattr(stage_mod, "commit_of", lambda settings: "c0ffee")
    return tmp_path


def test_an_entry_evicted_between_lookup_and_replay_makes_the_stage_run(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stored_entry(project / "cache")
    real_lookup = CacheStore.lookup

    def lookup_then_evict(self: CacheStore, stage: str, key: str) -> Entry | None:
        entry = real_lookup(self, stage, key)
        shutil.rmtree(project / "cache" / stage / key)  # another run's eviction
        return entry

    monkeypatch.setattr(CacheStore, "lookup", lookup_then_evict)
    env = {
        "CIPIPE_WORKSPACE": str(project / "ws"),
        "CIPIPE_OUTPUT_DIR": str(project / "out"),
        "CIPIPE_CACHE__ENABLED": "true",
        "CIPIPE_CACHE__DIR": str(store.root),
        "PATH": "/usr/bin:/bin",
    }
    stream = io.StringIO()
    spec = StageSpec("lint", "stand-in", "replaystages:ok", cache=True)
    code, line = stage_mod.execute("lint", project, env=env, stream=stream, stages=(spec,))
    result = json.loads((project / "out" / "lint.json").read_text())
    assert code == 0, line
    assert result["status"] == "passed" and result["summary"] == "ran for real"
    assert not result["cached"]
    shown = stream.getvalue()
    assert "could not replay" in shown and "running" in shown and "really ran" in shown
    assert "Traceback" not in shown + (project / "out" / "lint.log").read_text()


class Recorder:
    """The launcher behind the cache: records what it was asked to start."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, name: str, console: Path) -> object:
        self.started.append(name)
        return object()


def launcher(
    tmp_path: Path, store: CacheStore, redact: Redactor
) -> tuple[CachingLauncher, Recorder]:
    cache = StageCache(load(tmp_path, {"CIPIPE_WORKSPACE": str(tmp_path)}), store)
    entry = store.lookup("lint", INPUTS.key)
    assert entry is not None
    inner = Recorder()
    hits = {"lint": entry}
    return CachingLauncher(inner, cache, hits, tmp_path / "out", lambda n: 60.0, redact), inner


def test_the_flow_runs_a_stage_whose_replay_fails(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = stored_entry(tmp_path / "cache")
    store.warn = warnings.append
    caching, inner = launcher(tmp_path, store, Redactor())
    shutil.rmtree(tmp_path / "cache" / "lint")  # evicted after the lookup
    (tmp_path / "out").mkdir()
    console = tmp_path / "out" / "lint.console.log"
    caching.start("lint", console)
    assert inner.started == ["lint"]  # run for real
    assert "could not replay the cached lint result" in warnings[0]
    assert read_result(tmp_path / "out", "lint") is None  # no half-replayed result


def test_a_replay_writes_its_result_and_artifacts_masked(tmp_path: Path) -> None:
    # stored by a run that did not know the value was secret
    store = stored_entry(tmp_path / "cache", summary=f"saw {TOKEN}")
    art = next((tmp_path / "cache" / "lint").glob("*/files/junit.xml"))
    art.write_text(f'<testsuites name="{TOKEN}"/>')
    caching, inner = launcher(tmp_path, store, Redactor({TOKEN}))
    (tmp_path / "out").mkdir()
    caching.start("lint", tmp_path / "out" / "lint.console.log")
    assert inner.started == []
    written = read_result(tmp_path / "out", "lint")
    assert written is not None and written.cached and written.summary == "saw ***"
    everything = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert TOKEN not in everything and "<testsuites" in everything


class Exploding:
    def start(self, name: str, console: Path) -> object:
        raise OSError(28, "No space left on device")


def test_a_launcher_that_raises_is_an_internal_error_not_an_escape(tmp_path: Path) -> None:
    steps = [Step("lint", (), True, 60), Step("unit", ("lint",), True, 60)]
    outcome = Executor(
        steps, tmp_path, Exploding(), stream=io.StringIO(), install_signals=False
    ).run()
    by = {r.stage: r for r in outcome.results}
    assert by["lint"].status is Status.INTERNAL
    assert "could not start: OSError" in by["lint"].summary
    assert by["unit"].status is Status.BLOCKED
    assert outcome.exit_code == 70
    assert read_result(tmp_path, "lint") is not None
    assert "Traceback" in (tmp_path / "lint.console.log").read_text()


def unreadable(self: StageCache, spec: StageSpec) -> Inputs:
    """Inputs that cannot be computed (a file that cannot be read)."""
    raise OSError(5, "Input/output error")


def test_inputs_that_cannot_be_computed_make_the_stage_run_not_the_flow_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ci.flow import Step
    from ci.pipeline import cache_hits

    monkeypatch.setattr(StageCache, "inputs", unreadable)
    cfg = load(tmp_path, {"CIPIPE_CACHE__DIR": str(tmp_path / "cache")})
    shown = io.StringIO()
    cache, hits = cache_hits(cfg, [Step("lint", (), True, 60)], shown)
    assert cache is not None and hits == {}
    assert "cache: cannot compute the inputs of lint (Input/output error); it runs" in (
        shown.getvalue()
    )


def test_a_stage_whose_inputs_cannot_be_computed_runs_uncached(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StageCache, "inputs", unreadable)
    env = {
        "CIPIPE_WORKSPACE": str(project / "ws"),
        "CIPIPE_OUTPUT_DIR": str(project / "out"),
        "CIPIPE_CACHE__DIR": str(project / "cache"),
        "PATH": "/usr/bin:/bin",
    }
    stream = io.StringIO()
    spec = StageSpec("lint", "stand-in", "replaystages:ok", cache=True)
    code, line = stage_mod.execute("lint", project, env=env, stream=stream, stages=(spec,))
    assert code == 0 and line.startswith("lint passed"), line
    assert "cache: cannot compute the inputs (Input/output error); running uncached" in (
        stream.getvalue()
    )
    assert not (project / "cache" / "lint").exists()  # nothing stored under no key


class BadHandle:
    def poll(self) -> int | None:
        raise RuntimeError("the handle broke")

    def interrupt(self) -> None:
        return None

    def kill(self) -> None:
        return None


class BadLauncher:
    def start(self, name: str, console: Path) -> BadHandle:
        return BadHandle()


def test_a_crash_inside_the_executor_still_gives_every_stage_a_result(tmp_path: Path) -> None:
    steps = [Step("lint", (), True, 60), Step("unit", ("lint",), True, 60)]
    shown = io.StringIO()
    outcome = Executor(steps, tmp_path, BadLauncher(), stream=shown, install_signals=False).run()
    by = {r.stage: r for r in outcome.results}
    assert by["lint"].status is Status.INTERNAL and by["unit"].status is Status.INTERNAL
    assert "internal error in the executor: RuntimeError: the handle broke" in by["unit"].summary
    assert outcome.exit_code == 70
    assert "Traceback" in (tmp_path / "executor.log").read_text()
    assert "Traceback" not in shown.getvalue()
