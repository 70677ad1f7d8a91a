"""A small world for the stage cache's fast tests: a three-member Cargo workspace (not a
git repository: its files are hashed from disk, no process is started) inside a parent
folder with its own `.cargo/config.toml`, a path dependency and a `[patch]` path outside
it, a rustup home with two toolchains, a cargo home, and the keys the registry's stages
get for it."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.cache import StageCache
from ci.cache.affected import _keys
from ci.registry import get_stage
from ci.settings import load

HOST = "x86_64-unknown-linux-gnu"

FILES = {
    "Cargo.toml": """
        [workspace]
        members = ["core", "app", "gen"]
        resolver = "2"

        [workspace.dependencies]
        itoa = "1"

        [profile.dev]
        opt-level = 0

        [patch.crates-io]
        itoa = { path = "../patches/itoa" }
        """,
    "Cargo.lock": "# lock v1\n",
    "core/Cargo.toml": """
        [package]
        name = "core"
        version = "0.1.0"

        [features]
        fast = []
        """,
    "core/src/lib.rs": """
        #[path = "../../app/src/shared.rs"]
        mod shared;
        pub const BANNER: &str = include_str!("../../app/assets/banner.txt");
        pub const OWN: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/own.txt"));
        """,
    "core/data/own.txt": "own\n",
    "app/Cargo.toml": """
        [package]
        name = "app"
        version = "0.1.0"

        [dependencies]
        core = { path = "../core" }
        vendored = { path = "../../vendored" }
        """,
    "app/src/lib.rs": "pub fn app() {}\n",
    "app/src/shared.rs": "pub fn shared() {}\n",
    "app/assets/banner.txt": "hello\n",
    "gen/Cargo.toml": '[package]\nname = "gen"\nversion = "0.1.0"\nbuild = "build.rs"\n',
    "gen/build.rs": 'fn main() { let _ = std::fs::read("../core/schema.txt"); }\n',
    "gen/src/lib.rs": "pub fn generated() {}\n",
    "core/schema.txt": "schema v1\n",
}


def _pkg(ws: Path, name: str, deps: list[str], kinds: list[list[str]]) -> dict[str, Any]:
    return {
        "id": f"{name} 0.1.0 (path+file://{ws / name})",
        "name": name,
        "manifest_path": str(ws / name / "Cargo.toml"),
        "dependencies": [{"name": d, "path": str(ws / d)} for d in deps],
        "targets": [
            {"name": "build-script-build" if k == ["custom-build"] else name, "kind": k}
            for k in kinds
        ],
    }


@dataclass
class World:
    """Paths of the world and the environment the pipeline sees."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def ws(self) -> Path:
        return self.root / "outer" / "proj"

    @property
    def rustup(self) -> Path:
        return self.root / "rustup"

    @property
    def cargo_home(self) -> Path:
        return self.root / "cargo-home"

    def write(self, rel: str, text: str) -> Path:
        path = self.ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def toolchain(self, name: str) -> Path:
        """A rustup toolchain folder with the files the identity reads."""
        folder = self.rustup / "toolchains" / f"{name}-{HOST}"
        (folder / "bin").mkdir(parents=True, exist_ok=True)
        for tool in ("rustc", "cargo", "rustdoc"):
            (folder / "bin" / tool).write_text(f"{name} {tool}")
        return folder

    def meta(self) -> dict[str, Any]:
        """What `cargo metadata --no-deps` says of the workspace."""
        pkgs = [
            _pkg(self.ws, "core", [], [["lib"]]),
            _pkg(self.ws, "app", ["core"], [["lib"]]),
            _pkg(self.ws, "gen", [], [["lib"], ["custom-build"]]),
        ]
        return {"packages": pkgs, "workspace_members": [p["id"] for p in pkgs]}

    def cache(self, **env: str) -> StageCache:
        settings = load(self.root / "project", {**self.env, **env})
        cache = StageCache.open(settings)
        assert cache is not None
        return cache

    def key(self, stage: str, **env: str) -> str:
        """The stage's key now (fails when it is not cacheable)."""
        cache = self.cache(**env)
        inputs = cache.inputs(get_stage(stage))
        assert inputs is not None, cache.why_not(stage)
        return inputs.key

    def package_key(self, stage: str, package: str, **env: str) -> str:
        """One member's key for a test stage now."""
        keys = _keys(self.cache(**env), get_stage(stage), self.meta(), self.ws)
        assert keys is not None
        return keys[package]


def make_world(root: Path) -> World:
    """The world, written below `root`."""
    world = World(root)
    for rel, text in FILES.items():
        world.write(rel, text)
    (root / "project").mkdir()
    (root / "outer" / ".cargo").mkdir(parents=True)
    (root / "outer" / ".cargo" / "config.toml").write_text('[build]\nrustflags = ["-Dwarnings"]\n')
    for name, text in (("vendored", "pub fn v() {}\n"), ("patches/itoa", "pub fn itoa() {}\n")):
        crate = root / "outer" / name
        (crate / "src").mkdir(parents=True)
        (crate / "Cargo.toml").write_text(f'[package]\nname = "{crate.name}"\nversion = "1.0.0"\n')
        (crate / "src" / "lib.rs").write_text(text)
    world.toolchain("stable")
    world.toolchain("1.80.0")
    world.rustup.joinpath("settings.toml").write_text(
        f'default_toolchain = "stable"\ndefault_host_triple = "{HOST}"\n'
    )
    world.cargo_home.mkdir()
    (root / "bin").mkdir()
    world.env = {
        "HOME": str(root / "home"),
        "RUSTUP_HOME": str(world.rustup),
        "CARGO_HOME": str(world.cargo_home),
        "CIPIPE_WORKSPACE": str(world.ws),
        "CIPIPE_OUTPUT_DIR": str(root / "out"),
        "CIPIPE_CACHE__DIR": str(root / "cache"),
        "CIPIPE_CACHE__ENABLED": "true",
        "PATH": str(root / "bin"),
    }
    return world


def set_path(monkeypatch: Any, world: World) -> None:
    """The tools are looked up on PATH: only the world's own bin folder."""
    monkeypatch.setenv("PATH", str(world.root / "bin"))
