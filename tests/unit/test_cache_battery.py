"""The soundness battery of the stage cache (fast tier): one edit of each kind that can
change a verdict, and the key of the stage (or of the package) it affects must change,
so the stage is never replayed. The battery is the spec: a new input type is a new row.

Rows that need real git, the advisory database, the history or the services are in
tests/e2e/test_cache_battery.py; the issue's numbered cases are marked `#n`."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cache_world import World, make_world, set_path

from ci.cache.inputs import settings_digest
from ci.registry import STAGES
from ci.settings import Settings, load

ROOT = Path(__file__).resolve().parents[2]
Edit = Callable[[World], dict[str, str] | None]


@dataclass(frozen=True)
class Row:
    kind: str
    edit: Edit
    stage: str = "lint"
    package: str | None = None  # a member's key of the stage (per-package replay)


def append(rel: str, text: str = "// changed\n") -> Edit:
    def edit(w: World) -> None:
        path = w.ws / rel
        path.write_text(path.read_text() + text)

    return edit


def replace(rel: str, old: str, new: str) -> Edit:
    def edit(w: World) -> None:
        path = w.ws / rel
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))

    return edit


def env(**values: str) -> Edit:
    return lambda w: values


def chmod_x(w: World) -> None:
    path = w.ws / "app/src/lib.rs"
    path.chmod(path.stat().st_mode | 0o111)


def rename(w: World) -> None:
    (w.ws / "app/assets/banner.txt").rename(w.ws / "app/assets/welcome.txt")


def delete(w: World) -> None:
    (w.ws / "core/data/own.txt").unlink()


def new_file(w: World) -> None:
    (w.ws / "app/tests").mkdir()
    (w.ws / "app/tests/extra.rs").write_text("#[test]\nfn extra() {}\n")


def outside_link(w: World) -> None:
    (w.root / "fixtures.txt").write_text("numbers v1\n")
    (w.ws / "app/fixtures.txt").symlink_to(w.root / "fixtures.txt")


def link_target_edit(w: World) -> None:
    (w.root / "fixtures.txt").write_text("numbers v2\n")


def link_retarget(w: World) -> None:
    (w.root / "other.txt").write_text("numbers v1\n")  # same content, another file
    (w.ws / "app/fixtures.txt").unlink()
    (w.ws / "app/fixtures.txt").symlink_to(w.root / "other.txt")


def nested_repo_file(w: World) -> None:
    (w.ws / "vendor/nested/src/lib.rs").write_text("pub fn nested() -> u8 { 2 }\n")


def member_enables_feature(w: World) -> None:  # 3
    path = w.ws / "app/Cargo.toml"
    path.write_text(
        path.read_text().replace('path = "../core" }', 'path = "../core", features = ["fast"] }')
    )


def cargo_config(where: str) -> Edit:
    def edit(w: World) -> None:
        folder = {"workspace": w.ws, "parent": w.root / "outer", "cargo_home": w.cargo_home}[where]
        path = folder / (".cargo/config.toml" if where != "cargo_home" else "config.toml")
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text() if path.exists() else ""
        path.write_text(old + '[env]\nTEST_MODE = "strict"\n')

    return edit


def toolchain_file(w: World) -> None:
    (w.ws / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.80.0"\n')


def rustup_override(w: World) -> None:
    path = w.rustup / "settings.toml"
    path.write_text(path.read_text() + f'[overrides]\n"{w.ws}" = "1.80.0"\n')


def toolchain_touched(w: World) -> None:  # an update that keeps the size: only the time
    rustc = w.rustup / "toolchains" / "stable-x86_64-unknown-linux-gnu" / "bin" / "rustc"
    st = rustc.stat()
    os.utime(rustc, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def tool_upgraded(w: World) -> None:
    (w.root / "bin" / "cargo-nextest").write_text("#!/bin/sh\n# 0.9.200\n")


def outside_edit(folder: str) -> Edit:
    def edit(w: World) -> None:
        path = w.root / "outer" / folder / "src" / "lib.rs"
        path.write_text(path.read_text() + "// changed\n")

    return edit


ROWS = [
    Row("tracked file (content)", append("app/src/lib.rs")),
    Row("untracked new file", new_file),
    Row("renamed file", rename),
    Row("deleted file", delete),
    Row("mode bit", chmod_x),
    Row("symlink target's content (#6)", link_target_edit),
    Row("symlink pointed elsewhere (#6)", link_retarget),
    Row("file in a nested repository (#4)", nested_repo_file),
    Row(
        "another member's features (#3)",
        replace("app/Cargo.toml", '"../core" }', '"../core", features = ["fast"] }'),
        "unit",
        "core",
    ),
    Row("Cargo.lock", append("Cargo.lock", "# bumped\n"), "unit", "core"),
    Row("[workspace.dependencies]", append("Cargo.toml", "\n# itoa 1.0.9\n"), "unit", "core"),
    Row("[profile]", replace("Cargo.toml", "opt-level = 0", "opt-level = 1"), "unit", "core"),
    Row("build.rs", append("gen/build.rs"), "unit", "gen"),
    Row(
        "what build.rs reads (another member's file)",
        append("core/schema.txt", "v2\n"),
        "unit",
        "gen",
    ),
    Row("include_str! across packages", append("app/assets/banner.txt", "v2\n"), "unit", "core"),
    Row("#[path] into another package", append("app/src/shared.rs"), "unit", "core"),
    Row(
        "include_str! of its own data via CARGO_MANIFEST_DIR",
        append("core/data/own.txt", "2\n"),
        "unit",
        "core",
    ),
    Row(".cargo/config.toml in the workspace", cargo_config("workspace")),
    Row(".cargo/config.toml in a parent folder (#6)", cargo_config("parent")),
    Row(
        ".cargo/config.toml in a parent folder, per package (#6)",
        cargo_config("parent"),
        "unit",
        "core",
    ),
    Row("config.toml in $CARGO_HOME (#6)", cargo_config("cargo_home")),
    Row("rust-toolchain.toml", toolchain_file),
    Row("rustup directory override (#6)", rustup_override),
    Row("toolchain updated, only its timestamp differs", toolchain_touched),
    Row("path dependency outside the workspace (#6)", outside_edit("vendored")),
    Row(
        "path dependency outside the workspace, per package (#6)",
        outside_edit("vendored"),
        "unit",
        "app",
    ),
    Row("[patch] path outside the workspace (#6)", outside_edit("patches/itoa")),
    Row("RUSTFLAGS", env(RUSTFLAGS="-Copt-level=1")),
    Row("RUSTDOCFLAGS", env(RUSTDOCFLAGS="--cfg docsrs"), "unit"),
    Row("CARGO_* (profile override)", env(CARGO_PROFILE_DEV_OPT_LEVEL="2"), "unit"),
    Row("test env var (PROPTEST_CASES)", env(PROPTEST_CASES="1000"), "unit"),
    Row("test env var (the service's TS_* switch)", env(TS_FAULT_LATENCY_MS="5"), "integration"),
    Row("timeouts.<stage> (#6)", env(CIPIPE_TIMEOUTS__UNIT="5"), "unit"),
    Row("timeout_factor (the resolved hard limit)", env(CIPIPE_TIMEOUT_FACTOR="1"), "lint"),
    Row("a unit setting", env(CIPIPE_UNIT__RUNNER="nextest"), "unit"),
    Row("tool version (installed binary)", tool_upgraded, "unit"),
    Row(
        "a secret the stage may see: presence only",
        env(CIPIPE_PASS_ENV='["REGISTRY_TOKEN"]', REGISTRY_TOKEN="x"),
        "unit",
    ),
]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    w = make_world(tmp_path)
    set_path(monkeypatch, w)
    (w.root / "bin" / "cargo-nextest").write_text("#!/bin/sh\n# 0.9.143\n")
    (w.root / "bin" / "cargo-nextest").chmod(0o755)
    outside_link(w)
    nested = w.ws / "vendor/nested"
    (nested / ".git").mkdir(parents=True)
    (nested / "src").mkdir()
    (nested / "src/lib.rs").write_text("pub fn nested() -> u8 { 1 }\n")
    return w


def test_the_battery_has_at_least_30_kinds() -> None:
    assert len({r.kind for r in ROWS}) >= 30


@pytest.mark.parametrize("row", ROWS, ids=[r.kind for r in ROWS])
def test_every_kind_of_edit_changes_the_key_of_the_stage_it_affects(world: World, row: Row) -> None:
    def key(extra: dict[str, str]) -> str:
        if row.package:
            return world.package_key(row.stage, row.package, **extra)
        return world.key(row.stage, **extra)

    before = key({})
    assert key({}) == before  # nothing changed: the same key (replayed)
    extra = row.edit(world) or {}
    assert key(extra) != before, f"{row.kind}: {row.stage} would be replayed"


def test_an_unrelated_package_keeps_its_key(world: World) -> None:
    """The other direction: a change in app never re-tests core (core does not depend on
    app and reads none of the files changed)."""
    before = world.package_key("unit", "core")
    append("app/src/lib.rs")(world)
    assert world.package_key("unit", "core") == before
    assert world.package_key("unit", "app") != world.package_key("unit", "core")


def test_a_touch_changes_nothing(world: World) -> None:
    before = world.key("lint")
    path = world.ws / "core/src/lib.rs"
    os.utime(path, ns=(1, 1))
    assert world.key("lint") == before


def _leaves(table: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in table.items():
        out += _leaves(v, (*prefix, k)) if isinstance(v, dict) else [(*prefix, k)]
    return out


def _changed(value: object) -> str:
    if isinstance(value, bool):
        return "false" if value else "true"
    if isinstance(value, (int, float)):
        return str(value + 7)
    if isinstance(value, list):
        return '["changed"]'
    return "changed-value"


CACHED = [s for s in STAGES if s.cache]


@pytest.mark.parametrize("spec", CACHED, ids=[s.name for s in CACHED])
def test_every_setting_a_stage_reads_is_in_its_key_and_no_other(tmp_path: Path, spec) -> None:
    """Every key of every `[tool.pipeline]` table the stage declares it reads changes its
    key; a key of a table it does not read (a security setting for lint, unit,
    integration, bench) does not, so changing it replays the stage."""
    settings = load(tmp_path, {})
    base = settings_digest(settings, spec.reads, spec.name)
    volatile = {"budgets", "timeouts", "cache", "report", "metrics"}
    for section, table in settings.data.items():
        if not isinstance(table, dict) or section in volatile:
            continue
        reads = spec.reads is None or section in spec.reads
        for path in _leaves(table):
            data = copy.deepcopy(dict(settings.data))
            node = data[section]
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = _changed(node[path[-1]])
            changed = Settings(settings.root, data, settings.env)
            digest = settings_digest(changed, spec.reads, spec.name)
            assert (digest != base) == reads, f"{spec.name}: {section}.{'.'.join(path)}"


def _module_facts(name: str, memo: dict) -> tuple[list[str], set[str]]:
    """(the ci modules it imports, the literal `.section("x")` names it reads)."""
    import ast

    if name not in memo:
        base = ROOT / name.replace(".", "/")
        source = base.with_suffix(".py")
        source = source if source.is_file() else base / "__init__.py"
        imports: list[str] = []
        sections: set[str] = set()
        if source.is_file():  # else: a name imported from a module, not a module
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ci"):
                    imports += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                elif isinstance(node, ast.Import):
                    imports += [a.name for a in node.names if a.name.startswith("ci")]
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "section"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    sections.add(str(node.args[0].value))
        memo[name] = (imports, sections)
    return memo[name]


def test_the_declared_tables_match_the_code() -> None:
    """The registry's `reads` is checked against the code: every `.section("x")` in the
    stage's module and the pipeline modules it imports is declared (or volatile)."""
    volatile = {"budgets", "timeouts", "cache", "report", "metrics"}
    memo: dict = {}
    for spec in CACHED:
        seen: set[str] = set()
        found: set[str] = set()
        todo = [spec.target.partition(":")[0]]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                imports, sections = _module_facts(name, memo)
                todo += imports
                found |= sections
        assert spec.reads is not None
        missing = found - set(spec.reads) - volatile
        assert not missing, f"{spec.name} reads {sorted(missing)} but does not declare it"
