"""The stage result cache: a stage whose inputs are exactly those of an earlier green
run is replayed instead of run, and shown as **cached** with the run and time it came
from. Failures are never cached. `[tool.pipeline.cache] enabled = false` (or
`invoke ci --no-cache`, which sets CIPIPE_CACHE__ENABLED=false) always runs.

    cache = StageCache.open(settings, warn)
    inputs = cache.inputs(spec)          # None: not cacheable now, cache.why_not(name) says why
    entry = cache.lookup(spec.name, inputs)
    result = cache.replay(entry, ...)    # or run the stage, then, if
    cache.unchanged_since(spec, inputs)  # is empty (nothing changed while it ran),
    cache.remember(...)                  # store it; a run with extra arguments never is

What the key is made of: ci/cache/inputs.py; the soundness battery that specifies it:
tests/unit/test_cache_battery.py and tests/e2e/test_cache_battery.py.
"""

from __future__ import annotations

import importlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ci.cache.inputs import (
    Files,
    Inputs,
    Toolchain,
    shared_parts,
    stage_inputs,
    workspace_files,
)
from ci.cache.store import CacheStore, Entry
from ci.redact import Redactor, mask_xml
from ci.registry import StageSpec
from ci.result import StageResult, Status, atomic_write, read_result, write_result
from ci.settings import Settings

__all__ = ["CacheStore", "Entry", "Inputs", "ReplayFailed", "StageCache"]


class ReplayFailed(Exception):
    """A cached result could not be replayed (its entry went away since the lookup): the
    stage must run instead. Never reaches the user as a traceback."""


@dataclass
class StageCache:
    """The cache as one run sees it: settings, store, and the inputs shared by stages
    (the workspace listing and the toolchain are read once per run)."""

    settings: Settings
    store: CacheStore
    _files: Files | None = field(default=None, repr=False)
    _toolchain: Toolchain | None = field(default=None, repr=False)
    _shared: dict[str, str] | None = field(default=None, repr=False)
    # Why a stage is not cacheable right now (stage -> reason), for the log.
    reasons: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(
        cls, settings: Settings, warn: Callable[[str], None] | None = None
    ) -> StageCache | None:
        """The cache, or None when disabled."""
        sec = settings.section("cache")
        if not sec.flag("enabled"):
            return None
        root = sec.path("dir")
        assert root is not None
        return cls(settings, CacheStore(root, sec.number("max_mb", minimum=1), warn))

    @property
    def files(self) -> Files:
        """The workspace's files (read once)."""
        if self._files is None:
            exclude = [self.settings.out_dir, self.store.root]
            if self.settings.cargo_target_dir is not None:
                exclude.append(self.settings.cargo_target_dir)
            not_inputs = self.settings.section("cache").strings("not_inputs", ())
            self._files = workspace_files(self.settings.workspace, exclude, not_inputs)
        return self._files

    def fresh(self) -> StageCache:
        """The same cache with nothing read yet (to read the inputs again after a run)."""
        return StageCache(self.settings, self.store)

    @property
    def toolchain(self) -> Toolchain:
        """The Rust toolchain (identified once)."""
        if self._toolchain is None:
            self._toolchain = Toolchain(self.settings.env, self.settings.workspace)
        return self._toolchain

    def inputs(self, spec: StageSpec) -> Inputs | None:
        """The stage's inputs, or None when it is not cacheable (not declared so, an input
        that cannot be named, or its module says its own inputs cannot be known without
        running it); `reasons[spec.name]` then says why."""
        self.reasons.pop(spec.name, None)
        if not spec.cache:
            self.reasons[spec.name] = "the stage is never cached"
            return None
        if self.files.reason:
            self.reasons[spec.name] = self.files.reason
            return None
        extra: dict[str, str] | None = {}
        module = importlib.import_module(spec.target.partition(":")[0])
        hook = getattr(module, "cache_inputs", None)
        if hook is not None:
            extra = hook(self.settings)
            if extra is None:
                self.reasons[spec.name] = "an input of the stage itself cannot be named now"
                return None
            why = extra.get("uncacheable")
            if why:
                self.reasons[spec.name] = why
                return None
        if self._shared is None:
            self._shared = shared_parts(self.settings, self.files)
        return stage_inputs(
            self.settings,
            spec.name,
            files=self.files,
            toolchain=self.toolchain,
            shared=self._shared,
            extra=extra,
            env_names=spec.pass_env,
            sections=spec.reads,
        )

    def why_not(self, stage: str) -> str:
        """Why `stage` was found not cacheable (after `inputs` returned None)."""
        return self.reasons.get(stage, "not cacheable")

    def unchanged_since(self, spec: StageSpec, before: Inputs) -> list[str]:
        """Read the stage's inputs again (after its run): the names of the parts that
        changed since `before` (empty: the result may be stored)."""
        after = self.fresh().inputs(spec)
        if after is None:
            return ["not cacheable any more"]
        return after.changed(before.parts)

    def lookup(self, stage: str, inputs: Inputs) -> Entry | None:
        """A green result with exactly these inputs, if one was recorded."""
        return self.store.lookup(stage, inputs.key)

    def why_missed(self, stage: str, inputs: Inputs) -> str:
        """What changed since the last green run of `stage` (for the log)."""
        poisoned = self.store.poisoned(stage, inputs.key)
        if poisoned:
            return f"never replayed: {poisoned}"
        before = self.store.last_inputs(stage)
        if not before:
            return "no earlier green run recorded"
        changed = inputs.changed(before)
        return "changed: " + ", ".join(changed) if changed else "evicted"

    def replay(
        self,
        entry: Entry,
        out_dir: Path,
        budget: float,
        started: float,
        *,
        write_log: bool = True,
        redact: Callable[[str], str] | None = None,
    ) -> StageResult:
        """Write the cached result (marked as such) and its artifacts to `out_dir`,
        masked with `redact` (the entry was masked with the secrets its own run knew);
        `write_log` also writes the stage log (when no runner owns it). Raises
        ReplayFailed, with no result written, when the entry is gone (evicted by another
        run since the lookup): the caller runs the stage instead."""
        result = replace(entry.result, artifacts={}, cached={})
        stage = result.stage
        restored: dict[str, str] = {}
        target = out_dir / stage
        try:
            for name, src in entry.artifacts.items():
                target.mkdir(parents=True, exist_ok=True)
                dest = target / Path(entry.result.artifacts.get(name, src.name)).name
                _copy_masked(src, dest, redact)
                restored[name] = str(dest)
            log = out_dir / f"{stage}.log"
            if write_log:
                atomic_write(
                    log,
                    f"replayed from the stage cache: run {entry.run_id or '?'} at {entry.at} "
                    f"(commit {entry.commit[:12] or '?'}); its inputs are unchanged\n",
                )
        except OSError as err:
            raise ReplayFailed(
                f"could not replay the cached {stage} result of {entry.at or '?'} "
                f"({err.strerror or err}: an entry evicted since its lookup?)"
            ) from err
        restored["log"] = str(log)
        result.artifacts = restored
        result.cached = {
            "run_id": entry.run_id,
            "at": entry.at,
            "commit": entry.commit,
            "duration_s": f"{entry.result.duration_s:.3f}",
        }
        result.duration_s = round(time.monotonic() - started, 3)
        result.budget_s = budget
        write_result(out_dir, result, redact)
        return result

    def remember(self, stage: str, inputs: Inputs, out_dir: Path, run_id: str, commit: str) -> None:
        """Store the result just written for `stage` if it is green."""
        written = read_result(out_dir, stage)
        if written is None or not written.status.ok or written.cached:
            return
        artifacts = {
            name: Path(path)
            for name, path in written.artifacts.items()
            if name != "log" and Path(path).is_file()
        }
        data = written.to_dict()
        self.store.save(
            stage, inputs.key, data, inputs.parts, artifacts, run_id=run_id, commit=commit
        )


def _copy_masked(src: Path, dest: Path, redact: Callable[[str], str] | None) -> None:
    """Copy an artifact; a text one through `redact` (XML node by node, so it stays
    well-formed), written via a temp file and rename."""
    if redact is None:
        shutil.copy2(src, dest)
        return
    try:
        text = src.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # binary: nothing a mask could find
        shutil.copy2(src, dest)
        return
    masked = redact(text)
    if masked == text:  # the usual case: the entry was masked when stored; a plain copy
        shutil.copy2(src, dest)
        return
    if dest.suffix == ".xml" and isinstance(redact, Redactor):
        masked = mask_xml(text, redact)
    atomic_write(dest, masked)


def green(result: StageResult) -> bool:
    """Cacheable outcome."""
    return result.status in (Status.PASSED, Status.SKIPPED)
