"""The layering of ../shared/ARCHITECTURE.md ("Layers"), drawn from the imports.

Every module of ci/, deploy/, noxfile.py and tasks.py is placed in one layer by the table
PLACES below (one line per rule; the longest matching rule wins), and every import it
makes, at module level or inside a function, must point to its own layer or one below:

    1 entry      noxfile, tasks, the invoke task modules
    2 flows      the `invoke ci` executor and its display, the release and deploy flows
    3 stages     ci/stages/*, the stage runner (ci/stage.py), the registry, the stage cache
    4 libraries  what a stage or flow uses (security, services, bench, coverage, ...)
    5 shared     history store, GitHub client and retry policy, cargo helpers, tool parsers
    6 base       the stage contract, settings, process runner, masking, errors, signals

Imports under `if TYPE_CHECKING:` never run: they name a type for the checker, so the
layer order exempts them (a display may name the executor's type in an annotation). They
still count for circles, and never for the runner rule: a library does not name the stage
runner or the executor at all. The walker is stdlib `ast` only: nothing is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("ci", "deploy", "noxfile.py", "tasks.py")
OURS = ("ci", "deploy", "noxfile", "tasks")

ENTRY, FLOW, STAGE, LIBRARY, SHARED, BASE = 1, 2, 3, 4, 5, 6
NAMES = {1: "entry", 2: "flows", 3: "stages", 4: "libraries", 5: "shared", 6: "base"}

# `name` places that module only; `name.*` places the package and everything under it.
# A new top-level module or package matches no rule: the test asks for it to be placed.
PLACES: tuple[tuple[str, int], ...] = (
    # 1 entry: what nox, invoke and pytest load first
    ("noxfile", ENTRY),
    ("tasks", ENTRY),
    ("ci.bench.tasks", ENTRY),
    ("ci.history.tasks", ENTRY),
    ("ci.release.tasks", ENTRY),
    ("ci.reports.tasks", ENTRY),
    ("deploy.tasks", ENTRY),
    ("deploy.rollout.tasks", ENTRY),
    ("deploy.rollout.invoke_tasks", ENTRY),
    ("deploy.e2e.*", ENTRY),  # the suite pytest runs against a deployment
    # 2 flows: they order stages and steps and show them
    ("ci.pipeline", FLOW),
    ("ci.graph", FLOW),  # the planned graph (Step, plan): executor and display share it
    ("ci.flow", FLOW),
    ("ci.progress", FLOW),
    ("ci.live", FLOW),
    ("ci.prebuild", FLOW),
    ("ci.selfcheck", FLOW),
    ("ci.workflows", FLOW),  # the check-mode twin of .github/workflows (the CI flow)
    ("ci.workflow_secrets", FLOW),  # ... its pull-request secrets check
    ("ci.workflow_file", FLOW),  # ... and a workflow file, parsed, which both read
    ("ci.release.flow", FLOW),
    ("deploy.staging", FLOW),
    ("deploy.rollout.flow", FLOW),
    ("deploy.rollout.run", FLOW),
    ("deploy.rollout.controller", FLOW),
    ("deploy.rollout.watch", FLOW),
    ("deploy.rollout.live", FLOW),
    # 3 stages: one module per stage, the runner, the declarations they are made from
    ("ci.stages.*", STAGE),
    ("ci.stage", STAGE),
    ("ci.registry", STAGE),
    # The stage cache replays a stage's result, keyed by its declaration (StageSpec): it is
    # part of running a stage, as ci/stage.py and the stage modules use it.
    ("ci.cache.*", STAGE),
    # 4 libraries
    ("ci.security.*", LIBRARY),
    ("ci.services.*", LIBRARY),
    ("ci.bench.*", LIBRARY),
    ("ci.coverage.*", LIBRARY),
    ("ci.loadtest.*", LIBRARY),
    ("ci.release.*", LIBRARY),
    ("ci.reports.*", LIBRARY),
    ("ci.report", LIBRARY),
    ("ci.annotations", LIBRARY),
    ("ci.hooks", LIBRARY),
    ("ci.ci_runs", LIBRARY),
    ("deploy.*", LIBRARY),
    # 5 shared: below everything that uses them
    ("ci.history.*", SHARED),
    ("ci.github.*", SHARED),
    ("ci.cargo", SHARED),
    ("ci.features", SHARED),
    ("ci.parsers", SHARED),
    ("ci.prometheus", SHARED),  # tool parser: a service's /metrics (load stage, rollout)
    ("ci.tools", SHARED),
    ("ci.toolwheels", SHARED),  # the prebuilt tools ci.tools installs
    # 6 base
    ("ci", BASE),  # the package itself (its docstring only)
    ("ci.contract", BASE),
    ("ci.result", BASE),
    ("ci.settings", BASE),
    ("ci.workspace_config", BASE),
    ("ci.runner", BASE),
    ("ci.console", BASE),
    ("ci.redact", BASE),
    ("ci.errors", BASE),
    ("ci.interrupts", BASE),
)

# What runs stages: a library (or anything below the stages) never imports these, not
# even for a type.
RUNNERS = ("ci.stage", "ci.flow", "ci.pipeline")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (ours only)
    path: Path
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`

    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path, sources: Iterable[str] = SOURCES) -> dict[str, Path]:
    """Every module of ours by dotted name."""
    found: dict[str, Path] = {}
    for entry in sources:
        top = root / entry
        paths = sorted(top.rglob("*.py")) if top.is_dir() else [top]
        for path in paths:
            found[module_name(path, root)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _type_only_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes in the body (not the else) of `if TYPE_CHECKING:`."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                hidden.update(id(n) for n in ast.walk(stmt))
    return hidden


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module of ours that `name` refers to (a name inside it resolves to it)."""
    if name.split(".")[0] not in OURS:
        return None
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> Iterator[Import]:
    """Every import of ours in `path`: module level, in functions, in TYPE_CHECKING."""
    tree = ast.parse(path.read_text(), filename=str(path))
    hidden = _type_only_nodes(tree)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from ci.release import tarball` imports the module ci.release.tarball
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                yield Import(module, target, path, node.lineno, id(node) in hidden)


def layer_of(module: str, places: Iterable[tuple[str, int]] = PLACES) -> int | None:
    best: tuple[int, int] | None = None  # (length of the rule, layer)
    for rule, layer in places:
        exact = rule.removesuffix(".*")
        matches = module == exact or (rule.endswith(".*") and module.startswith(exact + "."))
        if matches and (best is None or len(exact) > best[0]):
            best = (len(exact), layer)
    return None if best is None else best[1]


def graph(root: Path) -> tuple[dict[str, Path], list[Import]]:
    modules = source_files(root)
    edges = [e for m, p in modules.items() for e in imports_of(m, p, modules)]
    return modules, edges


def upward(edges: Iterable[Import]) -> list[str]:
    """Imports that point to a higher layer (type-only ones excepted)."""
    bad = []
    for e in edges:
        src, dst = layer_of(e.source), layer_of(e.target)
        if e.type_only or src is None or dst is None or dst >= src:
            continue
        bad.append(f"{e.where()}: {e.source} ({NAMES[src]}) imports {e.target} ({NAMES[dst]})")
    return bad


def runner_imports(edges: Iterable[Import]) -> list[str]:
    bad = []
    for e in edges:
        src = layer_of(e.source)
        hits = e.target in RUNNERS
        if hits and src is not None and src > STAGE:
            bad.append(f"{e.where()}: {e.source} ({NAMES[src]}) imports the runner {e.target}")
    return bad


def circles(edges: Iterable[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    succ: dict[str, set[str]] = {}
    for e in edges:
        succ.setdefault(e.source, set()).add(e.target)
        succ.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(succ):
        if start in index:
            continue
        work = [(start, iter(sorted(succ[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(succ[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found)


# --- the rules, on this repository ------------------------------------------------------


@pytest.fixture(scope="module")
def repo() -> tuple[dict[str, Path], list[Import]]:
    return graph(ROOT)


def test_every_module_is_placed_in_a_layer(repo: tuple[dict[str, Path], list[Import]]) -> None:
    modules, _ = repo
    unplaced = [m for m in sorted(modules) if layer_of(m) is None]
    assert not unplaced, "place these modules in PLACES (tests/unit/test_layers.py): " + ", ".join(
        unplaced
    )


def test_imports_point_down(repo: tuple[dict[str, Path], list[Import]]) -> None:
    _, edges = repo
    bad = upward(edges)
    assert not bad, "imports pointing up a layer:\n" + "\n".join(bad)


def test_no_library_imports_the_stage_runner_or_the_executor(
    repo: tuple[dict[str, Path], list[Import]],
) -> None:
    _, edges = repo
    bad = runner_imports(edges)
    assert not bad, "\n".join(bad)


def test_no_import_circle_in_ci(repo: tuple[dict[str, Path], list[Import]]) -> None:
    _, edges = repo
    inside = [e for e in edges if e.source.startswith("ci") and e.target.startswith("ci")]
    found = circles(inside)
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


# --- the walker itself can see what it must ---------------------------------------------


def _tree(tmp: Path, files: Mapping[str, str]) -> list[Import]:
    for name, text in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    modules = source_files(tmp, ("ci",))
    return [e for m, p in modules.items() for e in imports_of(m, p, modules)]


def test_walker_sees_function_level_relative_and_type_only_imports(tmp_path: Path) -> None:
    edges = _tree(
        tmp_path,
        {
            "ci/__init__.py": "",
            "ci/stage.py": "",
            "ci/flow.py": "",
            "ci/bench/__init__.py": "",
            "ci/bench/measure.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from ci.flow import Step\n"
                "def f():\n    from ..stage import run\n"
            ),
            "ci/bench/session.py": "from . import measure\nimport ci.stage as s\n",
        },
    )
    seen = {(e.source, e.target, e.type_only) for e in edges}
    assert seen == {
        ("ci.bench.measure", "ci.flow", True),
        ("ci.bench.measure", "ci.stage", False),
        ("ci.bench.session", "ci.bench.measure", False),
        ("ci.bench.session", "ci.stage", False),
    }
    assert len(upward(edges)) == 2  # the type-only one is exempt from the order ...
    assert len(runner_imports(edges)) == 3  # ... but not from the runner rule


def test_circles_are_found_through_function_level_and_type_only_imports(
    tmp_path: Path,
) -> None:
    edges = _tree(
        tmp_path,
        {
            "ci/__init__.py": "",
            "ci/a.py": "from ci import b\n",
            "ci/b.py": "def f():\n    from ci.c import x\n",
            "ci/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ci.a\n",
            "ci/d.py": "from ci import a\n",
        },
    )
    assert circles(edges) == [["ci.a", "ci.b", "ci.c"]]


def test_layer_rules_longest_match_and_unplaced() -> None:
    assert layer_of("ci.bench.tasks") == ENTRY
    assert layer_of("ci.bench.chart") == LIBRARY
    assert layer_of("ci.stages.unit") == STAGE
    assert layer_of("ci.stage") == STAGE
    assert layer_of("ci.stagecoach") is None  # a prefix of a name is not a package
    assert layer_of("ci.somethingnew") is None
