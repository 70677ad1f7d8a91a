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


def _toolchain(home: Path, name: str) -> Path:
    bin_dir = home / "toolchains" / name / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("rustc", "cargo"):
        (bin_dir / tool).write_text(f"{name} {tool}")
    return bin_dir


HOST = "x86_64-unknown-linux-gnu"


def test_a_toolchain_update_that_changes_only_a_timestamp_is_a_new_toolchain(
    tmp_path: Path,
) -> None:
    home = tmp_path / "rustup"
    bin_dir = _toolchain(home, f"stable-{HOST}")
    (home / "settings.toml").write_text(
        f'default_toolchain = "stable"\ndefault_host_triple = "{HOST}"\n'
    )
    env = {"RUSTUP_HOME": str(home), "HOME": str(tmp_path)}
    before = Toolchain(env, tmp_path).digest()
    assert Toolchain(env, tmp_path).digest() == before
    rustc = bin_dir / "rustc"
    size = rustc.stat().st_size
    os.utime(rustc, ns=(rustc.stat().st_atime_ns, rustc.stat().st_mtime_ns + 10**9))
    assert rustc.stat().st_size == size  # same size, same content: only the time moved
    assert Toolchain(env, tmp_path).digest() != before


def test_the_toolchain_is_chosen_as_rustup_chooses_it(tmp_path: Path) -> None:
    """RUSTUP_TOOLCHAIN, then per folder from the workspace up: a directory override
    before a rust-toolchain.toml, the nearer folder first; then the default. A short
    name is this host's toolchain, never another host's that sorts first."""
    home = tmp_path / "rustup"
    for name in ("stable", "1.80.0", "1.81.0", "1.82.0", "nightly"):
        _toolchain(home, f"{name}-{HOST}")
    _toolchain(home, "1.80.0-aarch64-apple-darwin")  # sorts before the x86_64 one
    ws = tmp_path / "parent" / "ws"
    ws.mkdir(parents=True)
    settings = home / "settings.toml"
    base = f'default_toolchain = "stable"\ndefault_host_triple = "{HOST}"\n'
    env = {"RUSTUP_HOME": str(home), "HOME": str(tmp_path)}

    def chosen(**extra: str) -> tuple[str, str | None]:
        how, name, _ = Toolchain({**env, **extra}, ws).choice()
        return how.split(":")[0], name

    def overrides(**by_dir: str) -> None:
        lines = "".join(f'"{tmp_path / d}" = "{n}"\n' for d, n in by_dir.items())
        settings.write_text(base + ("[overrides]\n" + lines if lines else ""))

    overrides()
    assert chosen() == ("default", "stable")
    (tmp_path / "parent" / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.80.0"\n')
    assert chosen() == ("file", "1.80.0")
    overrides(**{"parent": "1.81.0"})  # same folder: the override wins over the file
    assert chosen() == ("override", "1.81.0")
    (ws / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.82.0"\n')
    assert chosen() == ("file", "1.82.0")  # a nearer file wins over a farther override
    overrides(**{"parent": "1.81.0", "parent/ws": "nightly"})
    assert chosen() == ("override", "nightly")
    assert chosen(RUSTUP_TOOLCHAIN="1.80.0") == ("env", "1.80.0")  # the environment first
    digests = {
        Toolchain({**env, "RUSTUP_TOOLCHAIN": n}, ws).digest()
        for n in ("stable", "1.80.0", "1.81.0", "nightly")
    }
    assert len(digests) == 4
    # the short name resolves to this host's copy, not the darwin one sorting first
    ident = Toolchain({**env, "RUSTUP_TOOLCHAIN": "1.80.0"}, ws)
    assert ident._rustup("1.80.0") is not None
    darwin = home / "toolchains" / "1.80.0-aarch64-apple-darwin" / "bin" / "rustc"
    before = Toolchain({**env, "RUSTUP_TOOLCHAIN": "1.80.0"}, ws).digest()
    darwin.write_text("changed")
    assert Toolchain({**env, "RUSTUP_TOOLCHAIN": "1.80.0"}, ws).digest() == before


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


def test_a_lookup_racing_a_save_never_discards_the_fresh_entry(tmp_path: Path) -> None:
    """Readers look an entry up while a writer replaces it again and again: a reader may
    miss (between the two renames) but must never take the replacement for damage and
    delete it, nor ever get a half entry."""
    warnings: list[str] = []
    store = CacheStore(tmp_path / "cache", warn=warnings.append)
    art = tmp_path / "junit.xml"
    art.write_text("<testsuites/>")
    store.save("unit", "k", result(), {}, {"junit": art}, run_id="r0", commit="c")
    stop = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        for i in range(60):
            store.save("unit", "k", result(), {}, {"junit": art}, run_id=f"r{i}", commit="c")
        stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                entry = store.lookup("unit", "k")
                if entry is not None:
                    assert entry.result.status is Status.PASSED
                    seen.append(entry.run_id)
        except BaseException as err:
            errors.append(err)

    threads = [
        threading.Thread(target=writer),
        *(threading.Thread(target=reader) for _ in range(3)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and seen
    assert not warnings, warnings[:3]
    final = store.lookup("unit", "k")
    assert final is not None and final.run_id == "r59"
