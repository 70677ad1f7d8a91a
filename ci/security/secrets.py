"""Secret scanning with detect-secrets (Yelp), the gitleaks equivalent installable here.

The working tree is the files git knows (tracked plus untracked-but-not-ignored, so
`target/` and `.git/` never count), or every file below the root outside `target/` and
`.git/` when the workspace is not in a git repository. With `history`, every blob ever
committed on any ref is scanned too.

Reviewed false positives live in a detect-secrets baseline (`.secrets.baseline`, made with
`detect-secrets scan > .secrets.baseline`, reviewed with `detect-secrets audit`): a hit
whose (file, type, hashed secret) is in it passes, and the baseline's exclude-files
patterns remove paths from the scan (the project's own planted test secrets).

detect-secrets is driven through its Python API (in the security stage's own virtualenv):
each hit comes with its value, which is registered with the redactor before anything is
printed, so only `mask_value` of it is ever shown. Verification plugins (which would call
out to third-party services) are never enabled.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ci.errors import ConfigError, PipelineError, ToolMissing
from ci.redact import mask_value
from ci.result import Finding
from ci.runner import Runner, require

# Never scanned: build output and git internals, wherever they are, and the record cargo
# writes into every published crate (its commit's sha1: high entropy, no secret).
ALWAYS_EXCLUDE = (r"(^|/)target/", r"(^|/)\.git/", r"(^|/)\.cargo_vcs_info\.json$")
_EXCLUDE_FILTER = "detect_secrets.filters.regex.should_exclude_file"
MAX_BLOB_BYTES = 1_000_000  # history: larger blobs are data, not config


@dataclass(frozen=True)
class Hit:
    """One potential secret as detect-secrets reports it (no value, only its hash)."""

    kind: str
    file: str
    line: int
    hashed: str
    value: str | None = field(default=None, repr=False)  # never printed: masked first
    commit: str | None = None  # set for hits found in history only


@dataclass
class Baseline:
    """Reviewed hits, excluded paths and the scan settings (plugins, filters) of a
    detect-secrets baseline file."""

    path: Path | None = None
    allowed: set[tuple[str, str, str]] = field(default_factory=set)
    excludes: list[str] = field(default_factory=list)
    config: dict[str, object] = field(default_factory=dict)

    def allows(self, hit: Hit) -> bool:
        return (hit.file, hit.kind, hit.hashed) in self.allowed


def load_baseline(path: Path | None) -> Baseline:
    """Parse a detect-secrets baseline; a missing file is an empty baseline."""
    if path is None or not path.exists():
        return Baseline(path=None)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        allowed = {
            (file, entry["type"], entry["hashed_secret"])
            for file, entries in data.get("results", {}).items()
            for entry in entries
        }
        excludes: list[str] = []
        for filt in data.get("filters_used", []):
            if filt.get("path") == _EXCLUDE_FILTER:
                pattern = filt.get("pattern", [])
                excludes += [pattern] if isinstance(pattern, str) else list(pattern)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(
            f"{path}: not a detect-secrets baseline ({err}); regenerate it with "
            "`detect-secrets scan > .secrets.baseline`"
        ) from None
    config = {
        "plugins_used": data.get("plugins_used", []),
        "filters_used": [
            f
            for f in data.get("filters_used", [])
            if "verif" not in str(f.get("path", ""))  # never call third-party services
        ],
    }
    return Baseline(path=path, allowed=allowed, excludes=excludes, config=config)


def compile_excludes(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    """Compile path regexes; ConfigError naming the bad one."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as err:
            raise ConfigError(f"secret scan exclude pattern {pattern!r}: {err}") from None
    return compiled


def excluded(path: str, patterns: Sequence[re.Pattern[str]]) -> bool:
    """True when a `/`-separated relative path matches any exclude pattern."""
    return any(p.search(path) for p in patterns)


def _git(root: Path, args: Sequence[str], stdin: bytes | None = None) -> bytes:
    """Quiet git plumbing (file lists, blobs): not user-facing steps, so not echoed."""
    proc = subprocess.run(
        [require("git"), "-C", str(root), *args],
        input=stdin,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise PipelineError(f"git {args[0]} failed in {root}: {reason[-1] if reason else '?'}")
    return proc.stdout


def in_git(root: Path) -> bool:
    """True when `root` is inside a git work tree."""
    try:
        return _git(root, ["rev-parse", "--is-inside-work-tree"]).strip() == b"true"
    except PipelineError:
        return False


def list_files(root: Path, patterns: Sequence[re.Pattern[str]]) -> list[str]:
    """The working-tree files to scan, relative to `root`, exclusions applied."""
    if in_git(root):
        raw = _git(root, ["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        names = sorted({n for n in raw.decode("utf-8", errors="replace").split("\0") if n})
    else:
        names = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in ("target", ".git"))
            rel = Path(folder).relative_to(root)
            names += [(rel / f).as_posix() for f in sorted(files)]
    return [
        n
        for n in names
        if not excluded(n, patterns) and (root / n).is_file() and not (root / n).is_symlink()
    ]


def run_scan(root: Path, files: Sequence[str], config: dict[str, object]) -> list[Hit]:
    """Scan `files` (relative to `root`) with detect-secrets' Python API, configured like
    the baseline (`config`: its plugins and filters; empty: every plugin)."""
    try:
        from detect_secrets.core import scan as ds_scan
        from detect_secrets.settings import default_settings, transient_settings
    except ImportError:
        raise ToolMissing(
            "detect-secrets", "run `nox -s security` (its own virtualenv pins detect-secrets)"
        ) from None
    hits: list[Hit] = []
    settings = transient_settings(config) if config.get("plugins_used") else default_settings()
    with settings:
        for name in files:
            for found in ds_scan.scan_file(str(root / name)):
                hits.append(
                    Hit(
                        kind=str(found.type),
                        file=name,
                        line=int(found.line_number or 0),
                        hashed=str(found.secret_hash),
                        value=found.secret_value or None,
                    )
                )
    return hits


def history_hits(
    runner: Runner, root: Path, patterns: Sequence[re.Pattern[str]], config: dict[str, object]
) -> list[Hit]:
    """Scan every blob reachable from any ref. The hits carry the original path and the
    first commit that has the blob."""
    objects = _git(root, ["rev-list", "--all", "--objects"]).decode("utf-8", errors="replace")
    paths: dict[str, str] = {}
    for row in objects.splitlines():
        sha, _, path = row.partition(" ")
        if path and not excluded(path, patterns):
            paths.setdefault(sha, path)
    if not paths:
        return []
    checks = _git(
        root,
        ["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
        stdin="\n".join(paths).encode(),
    ).decode()
    blobs = [
        parts[0]
        for parts in (row.split() for row in checks.splitlines())
        if len(parts) == 3 and parts[1] == "blob" and int(parts[2]) <= MAX_BLOB_BYTES
    ]
    runner.say(f"history: {len(blobs)} distinct file versions on all refs")
    if not blobs:
        return []
    data = _git(root, ["cat-file", "--batch"], stdin="\n".join(blobs).encode())
    with tempfile.TemporaryDirectory(prefix="secrets-history-") as tmp:
        base = Path(tmp)
        files: list[str] = []
        pos = 0
        for sha in blobs:
            header_end = data.index(b"\n", pos)
            size = int(data[pos:header_end].split()[2])
            body = data[header_end + 1 : header_end + 1 + size]
            pos = header_end + 1 + size + 1
            rel = f"{sha[:16]}/{paths[sha]}"
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            files.append(rel)
        raw_hits = run_scan(base, files, config)
    hits: list[Hit] = []
    by_prefix = {sha[:16]: sha for sha in blobs}
    for hit in raw_hits:
        prefix, _, path = hit.file.partition("/")
        sha = by_prefix.get(prefix, prefix)
        log = _git(root, ["log", "--all", "--reverse", "--format=%h", f"--find-object={sha}"])
        commit = (log.decode().split() or [sha[:12]])[0]
        hits.append(Hit(hit.kind, path, hit.line, hit.hashed, hit.value, commit))
    return hits


def rule_id(kind: str) -> str:
    """A stable rule id from a detect-secrets type: `AWS Access Key` → `aws-access-key`."""
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") or "secret"


@dataclass
class SecretScan:
    """Outcome of the secrets check: blocking findings and what was allowed."""

    findings: list[Finding]
    files: int
    allowed: int


def scan(
    runner: Runner,
    root: Path,
    *,
    baseline: Baseline,
    extra_excludes: Sequence[str] = (),
    history: bool = False,
) -> SecretScan:
    """Scan the working tree (and history) of `root`; every hit not in the baseline is an
    error finding whose message holds the secret's kind and masked value only."""
    patterns = compile_excludes([*ALWAYS_EXCLUDE, *baseline.excludes, *extra_excludes])
    files = list_files(root, patterns)
    if baseline.path is not None:
        try:
            own = baseline.path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            own = None
        files = [f for f in files if f != own]  # its hashes look like hex secrets
    runner.say(f"scanning {len(files)} file(s)")
    hits = run_scan(root, files, baseline.config) if files else []
    if history:
        if not in_git(root):
            raise ConfigError(
                f"history scan needs a git repository; {root} is not in one "
                "(drop --history or [tool.pipeline.security] scan_history)"
            )
        seen = {(h.file, h.hashed) for h in hits}
        for hit in history_hits(runner, root, patterns, baseline.config):
            if (hit.file, hit.hashed) not in seen:
                seen.add((hit.file, hit.hashed))
                hits.append(hit)
    # Every value found is registered before any finding is printed or written.
    runner.redact.add(h.value for h in hits if h.value)
    findings = []
    allowed = 0
    for hit in hits:
        if baseline.allows(hit):
            allowed += 1
            continue
        shown = mask_value(hit.value) if hit.value else "(value hidden)"
        where = f" (history, commit {hit.commit})" if hit.commit else ""
        findings.append(
            Finding(
                check="secrets",
                message=f"{hit.kind}: {shown}{where}",
                rule=rule_id(hit.kind),
                file=hit.file,
                line=hit.line or None,
                severity="error",
            )
        )
    return SecretScan(findings=findings, files=len(files), allowed=allowed)
