"""Which bench targets a workspace has, which harness each uses, and how to build them.

Any Cargo workspace: bench targets come from `cargo metadata` (members only), so
`harness = false` targets and targets behind `required-features` are found like any
other; the features a target requires are enabled for its package when it is built.
The harness is read from the source: criterion (`criterion_main!`) is timed on the wall
clock, gungraun (`gungraun::main!`, or its former name iai-callgrind) counts
instructions; anything else is listed as not measured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CRITERION = "criterion"
GUNGRAUN = "gungraun"
OTHER = "other"

_CRITERION = re.compile(r"\bcriterion_main\s*!|\bcriterion::")
_GUNGRAUN = re.compile(r"\bgungraun::|\biai_callgrind::|\blibrary_benchmark\b")


@dataclass(frozen=True)
class BenchTarget:
    """A `[[bench]]` target of a workspace member."""

    package: str
    name: str
    manifest_path: Path
    src_path: Path
    required_features: tuple[str, ...]
    harness: str  # criterion | gungraun | other

    @property
    def package_dir(self) -> Path:
        """The package root: cargo runs bench executables from there."""
        return self.manifest_path.parent

    @property
    def key(self) -> tuple[str, str]:
        """(package, target): the same on both sides of a comparison."""
        return (self.package, self.name)


def classify_source(text: str) -> str:
    """The harness a bench source uses: criterion, gungraun or other."""
    if _GUNGRAUN.search(text):
        return GUNGRAUN
    if _CRITERION.search(text):
        return CRITERION
    return OTHER


def bench_targets(meta: dict[str, Any]) -> list[BenchTarget]:
    """Every bench target of the workspace members in `cargo metadata` output."""
    members = set(meta.get("workspace_members", []))
    found = []
    for pkg in meta.get("packages", []):
        if pkg.get("id") not in members:
            continue
        for target in pkg.get("targets", []):
            if "bench" not in target.get("kind", []):
                continue
            src = Path(target["src_path"])
            try:
                harness = classify_source(src.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                harness = OTHER
            found.append(
                BenchTarget(
                    package=pkg["name"],
                    name=target["name"],
                    manifest_path=Path(pkg["manifest_path"]),
                    src_path=src,
                    required_features=tuple(target.get("required-features", []) or ()),
                    harness=harness,
                )
            )
    return sorted(found, key=lambda t: t.key)


def build_args(targets: Sequence[BenchTarget], extra_features: Iterable[str] = ()) -> list[str]:
    """`cargo bench --no-run` arguments building exactly `targets`: each package once,
    each bench target by name, the features they require enabled for their package."""
    args = ["bench", "--no-run", "--message-format=json-render-diagnostics"]
    for pkg in sorted({t.package for t in targets}):
        args += ["-p", pkg]
    for name in sorted({t.name for t in targets}):
        args += ["--bench", name]
    features = sorted(
        {f"{t.package}/{f}" if "/" not in f else f for t in targets for f in t.required_features}
        | set(extra_features)
    )
    if features:
        args += ["--features", ",".join(features)]
    return args


def executables(stdout: str) -> dict[tuple[Path, str], Path]:
    """{(manifest path, bench target name): executable} from cargo's JSON messages."""
    found: dict[tuple[Path, str], Path] = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        target = msg.get("target") or {}
        if "bench" not in target.get("kind", []):
            continue
        found[(Path(msg["manifest_path"]), target["name"])] = Path(msg["executable"])
    return found


def gungraun_version(lock_text: str) -> str | None:
    """The gungraun library version a Cargo.lock pins (its runner must match it)."""
    import tomllib

    try:
        data = tomllib.loads(lock_text)
    except tomllib.TOMLDecodeError:
        return None
    for pkg in data.get("package", []):
        if pkg.get("name") == "gungraun":
            version = pkg.get("version")
            return str(version) if version else None
    return None
