"""`nox -s fuzz` on stable Rust (cargo-fuzz, `--sanitizer none`): a planted panic reachable
from fuzz input is found within the time box and reported with its reproducer; missing
tooling, unknown targets and workspaces without fuzz targets are one clear line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from helpers import run_nox


def result(env: dict[str, str]) -> dict:
    return json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "fuzz.json").read_text())


def test_planted_panic_is_found_with_a_reproducer(fixture_env) -> None:
    env = fixture_env("fuzz_fault")
    r = run_nox(["fuzz"], env, "--", "--seconds", "120")
    assert r.returncode != 0, r.stdout[-3000:]
    data = result(env)
    assert data["status"] == "failed"
    [finding] = data["findings"]
    assert finding["rule"] == "fuzz-crash" and finding["crate"] == "parse"
    assert "fuzz target parse crashed: index out of bounds" in finding["message"]
    assert "src/lib.rs:8" in finding["message"]
    crash = Path(finding["message"].split("reproducer ")[1].split(" ")[0])
    assert crash.is_file() and crash.read_bytes().startswith(b"FUZ!")
    assert f"replay: cargo fuzz run parse {crash}" in finding["message"]
    # the corpus kept in the repository is a seed, never written to
    corpus = Path(env["CIPIPE_WORKSPACE"]) / "fuzz" / "corpus" / "parse"
    assert sorted(p.name for p in corpus.iterdir()) == ["seed-order"]


def test_workspace_without_fuzz_targets_is_a_stated_skip(fixture_env) -> None:
    env = fixture_env("clean")
    r = run_nox(["fuzz"], env)
    assert r.returncode == 0
    data = result(env)
    assert data["status"] == "skipped" and "no cargo-fuzz project at" in data["summary"]


def test_unknown_target_is_one_line(fixture_env) -> None:
    env = fixture_env("fuzz_fault")
    r = run_nox(["fuzz"], env, "--", "--target", "nope", "--seconds", "1")
    assert r.returncode != 0 and "Traceback" not in r.stdout + r.stderr
    assert "unknown target(s) nope; targets: parse" in result(env)["summary"]


def test_missing_cargo_fuzz_is_one_line(fixture_env, tmp_path: Path) -> None:
    # A PATH with cargo and rustc but no cargo-fuzz, and installing not allowed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cargo", "rustc", "git"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    env = fixture_env(
        "fuzz_fault",
        PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        CIPIPE_INSTALL_TOOLS="false",
        CARGO_HOME=str(tmp_path / "empty-cargo-home"),  # no private install of the pin
        RUSTUP_HOME=os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")),
    )
    r = run_nox(["fuzz"], env, "--", "--seconds", "1")
    assert r.returncode != 0 and "Traceback" not in r.stdout + r.stderr
    summary = result(env)["summary"]
    assert "cargo-fuzz" in summary and "invoke tools.install" in summary
    assert "pins 0.13.2 but it is not installed" in summary
