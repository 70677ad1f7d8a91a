"""Check-mode twins of the documentation: the configuration reference is the one the
generator writes from ci/defaults.toml, every exit code has its troubleshooting row, the
README stays a five-minute read whose links exist, and `nox -l` tells the truth."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType

from ci.registry import STAGES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_configuration_reference_is_generated_from_the_schema() -> None:
    gen = _script("config_reference")
    text = (ROOT / "ci" / "defaults.toml").read_text()
    page = (DOCS / "configuration-reference.md").read_text()
    assert page == gen.render(text), "run python3 scripts/config_reference.py"


def _leaves(table: dict, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    keys: set[tuple[str, ...]] = set()
    for key, value in table.items():
        if isinstance(value, dict):
            keys |= _leaves(value, (*prefix, key))
        else:
            keys.add((*prefix, key))
    return keys


def test_the_reference_lists_every_key_the_schema_accepts() -> None:
    gen = _script("config_reference")
    text = (ROOT / "ci" / "defaults.toml").read_text()
    _, tables = gen.parse(text)
    listed = {(*(t.name.split(".") if t.name else ()), k.name) for t in tables for k in t.keys}
    assert listed == _leaves(tomllib.loads(text))


_ERROR = re.compile(r"^class (\w+)\((\w+)\):\n(?:    .*\n|\n)*?    exit_code = (\d+)$", re.M)


def test_every_exit_code_has_a_troubleshooting_row() -> None:
    page = (DOCS / "troubleshooting.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ")]
    found = []
    for path in [*ROOT.glob("ci/**/*.py"), *ROOT.glob("deploy/**/*.py")]:
        for name, _, code in _ERROR.findall(path.read_text()):
            found.append(name)
            if name == "PipelineError":
                continue
            assert any(r.startswith(f"| {code} |") and f"`{name}`" in r for r in rows), (
                f"{path.relative_to(ROOT)}: {name} (exit {code}) has no row in troubleshooting.md"
            )
    assert {"ConfigError", "ToolMissing", "ReleaseUnhealthy", "NotApproved"} <= set(found)
    contract = (ROOT / "ci" / "contract.py").read_text()
    for code in re.findall(r"^EXIT_\w+ = (\d+)", contract, re.M):
        assert any(r.startswith(f"| {code} |") for r in rows), f"exit {code} undocumented"


def test_the_readme_is_a_five_minute_read_with_working_links() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\((?!https?://)([^)#]+)(?:#[^)]*)?\)", readme):
        assert (ROOT / target).exists(), f"README links to missing {target}"
    for page in ("stages.md", "troubleshooting.md", "configuration-reference.md"):
        assert f"docs/{page}" in readme


def test_nox_list_names_the_default_unit_runner() -> None:
    defaults = tomllib.loads((ROOT / "ci" / "defaults.toml").read_text())
    runner = defaults["unit"]["runner"]
    command = {"libtest": "cargo test", "nextest": "cargo nextest"}[runner]
    unit = next(s for s in STAGES if s.name == "unit")
    first = unit.description.split("(", 1)[1]
    assert first.startswith(command), unit.description
