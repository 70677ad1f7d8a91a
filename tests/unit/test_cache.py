"""The stage result cache's pure parts: the store (entries, corruption, eviction,
concurrent writers) and the inputs that need no git (toolchain, settings, environment)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from ci.cache.inputs import Inputs, Toolchain, env_digest, settings_digest
from ci.cache.store import CacheStore
from ci.result import StageResult, Status
from ci.settings import load


def result(status: Status = Status.PASSED) -> dict:
    return StageResult("lint", status, 1.5, 60, summary="fmt: formatted").to_dict()


def test_a_green_result_is_stored_and_found_with_its_artifacts(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache")
    art = tmp_path / "junit.xml"
    art.write_text("<testsuites/>")
    store.save("lint", "k1", result(), {"workspace": "a"}, {"junit": art}, run_id="r1", commit="c")
    entry = store.lookup("lint", "k1")
    assert entry is not None and entry.result.status is Status.PASSED
    assert entry.run_id == "r1" and entry.inputs == {"workspace": "a"}
    assert entry.artifacts["junit"].read_text() == "<testsuites/>"
    assert store.lookup("lint", "other") is None
    assert store.last_inputs("lint") == {"workspace": "a"}


def test_failures_are_never_stored(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    for status in (Status.FAILED, Status.ERROR, Status.TIMEOUT, Status.CANCELLED):
        assert store.save("unit", "k", result(status), {}, {}, run_id="r", commit="c") is None
    assert store.lookup("unit", "k") is None


def test_a_corrupt_entry_is_discarded_with_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = CacheStore(tmp_path, warn=warnings.append)
    folder = store.save("lint", "k", result(), {}, {}, run_id="r", commit="c")
    assert folder is not None
    (folder / "entry.json").write_text("{not json")
    assert store.lookup("lint", "k") is None
    assert warnings and "discarded a damaged entry for lint" in warnings[0]
    assert not folder.exists()
    # an entry claiming a failed result is never trusted either
    folder = store.save("lint", "k", result(), {}, {}, run_id="r", commit="c")
    assert folder is not None
    meta = json.loads((folder / "entry.json").read_text())
    meta["result"]["status"] = "failed"
    (folder / "entry.json").write_text(json.dumps(meta))
    assert store.lookup("lint", "k") is None


def test_least_recently_used_entries_go_beyond_the_bound(tmp_path: Path) -> None:
    store = CacheStore(tmp_path, max_mb=0.02)  # ~20 KB
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8000))
    for i in range(4):
        store.save("unit", f"k{i}", result(), {}, {"blob": big}, run_id="r", commit="c")
        os.utime(tmp_path / "unit" / f"k{i}" / "entry.json", (1000 + i, 1000 + i))
    store.evict()
    kept = sorted(p.name for p in (tmp_path / "unit").iterdir() if p.is_dir())
    assert kept == ["k2", "k3"]


def test_concurrent_writers_leave_only_whole_entries(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                store.save(
                    "unit", f"k{i % 3}", result(), {"n": str(n)}, {}, run_id=str(n), commit="c"
                )
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(3):
        entry = store.lookup("unit", f"k{i}")
        assert entry is not None and entry.result.status is Status.PASSED
    assert not [p for p in (tmp_path / "unit").iterdir() if p.name.startswith(".tmp")]


def test_toolchain_identity_changes_with_the_toolchain(tmp_path: Path) -> None:
    home = tmp_path / "rustup"
    bin_dir = home / "toolchains" / "stable-x86_64-unknown-linux-gnu" / "bin"
    bin_dir.mkdir(parents=True)
    (home / "settings.toml").write_text('default_toolchain = "stable-x86_64-unknown-linux-gnu"\n')
    for tool in ("rustc", "cargo"):
        (bin_dir / tool).write_text("v1")
    env = {"RUSTUP_HOME": str(home), "HOME": str(tmp_path)}
    before = Toolchain(env, tmp_path).digest()
    (bin_dir / "rustc").write_text("v2-longer")  # a toolchain update replaces rustc
    assert Toolchain(env, tmp_path).digest() != before
    (tmp_path / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.88.0"\n')
    pinned = home / "toolchains" / "1.88.0-x86_64-unknown-linux-gnu" / "bin"
    pinned.mkdir(parents=True)
    for tool in ("rustc", "cargo"):
        (pinned / tool).write_text("old")
    assert Toolchain(env, tmp_path).digest() != Toolchain(env, tmp_path.parent).digest()


def test_settings_and_environment_digests_track_what_changes_verdicts(tmp_path: Path) -> None:
    base = settings_digest(load(tmp_path, {}))
    assert settings_digest(load(tmp_path, {"CIPIPE_BUDGETS__LINT": "5"})) == base  # display only
    assert settings_digest(load(tmp_path, {"CIPIPE_UNIT__RUNNER": "nextest"})) != base
    env = {"RUSTFLAGS": "-Dwarnings", "PATH": "/bin", "GITHUB_TOKEN": "ghp_x"}
    assert env_digest(env) != env_digest({**env, "RUSTFLAGS": "-Copt-level=1"})
    assert env_digest(env) == env_digest({**env, "PATH": "/usr/bin"})
    assert env_digest(env) == env_digest({**env, "GITHUB_TOKEN": "ghp_other"})  # never secrets
    assert env_digest(env) != env_digest({**env, "TS_FAULT_LATENCY_MS": "5"})


def test_inputs_say_what_changed() -> None:
    a = Inputs({"workspace": "1", "toolchain": "t"})
    b = Inputs({"workspace": "2", "toolchain": "t"})
    assert a.key != b.key and b.changed(a.parts) == ["workspace"]
