"""Secret scanning with detect-secrets (Yelp), the gitleaks equivalent installable here.

The working tree is the files git knows (tracked plus untracked-but-not-ignored, so
`target/` and `.git/` never count), or every file below the root outside `target/` and
`.git/` when the workspace is not in a git repository. With `history`, every blob ever
committed on any ref is scanned too.

Reviewed false positives live in a detect-secrets baseline (`.secrets.baseline`, made with
`detect-secrets scan > .secrets.baseline`, reviewed with `detect-secrets audit`): a hit
whose (file, type, hashed secret) is in it passes, and the baseline's exclude-files
patterns remove paths from the scan (the project's own planted test secrets).

detect-secrets reports only a SHA-1 of each secret. To show a masked form we find the
substring of the flagged line with that hash, register it with the redactor before
anything prints, and show only `mask_value` of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ci.errors import ConfigError, PipelineError
from ci.redact import mask_value
from ci.result import Finding
from ci.runner import Runner, require

# Never scanned: build output and git internals, wherever they are.
ALWAYS_EXCLUDE = (r"(^|/)target/", r"(^|/)\.git/")
_EXCLUDE_FILTER = "detect_secrets.filters.regex.should_exclude_file"
MAX_BLOB_BYTES = 1_000_000  # history: larger blobs are data, not config
_CHUNK = 500  # files per detect-secrets call, far below any argv limit
_EXHAUSTIVE_LINE = 512  # lines up to this length are searched substring by substring


@dataclass(frozen=True)
class Hit:
    """One potential secret as detect-secrets reports it (no value, only its hash)."""

    kind: str
    file: str
    line: int
    hashed: str
    commit: str | None = None  # set for hits found in history only


@dataclass
class Baseline:
    """Reviewed hits and excluded paths from a detect-secrets baseline file."""

    path: Path | None = None
    allowed: set[tuple[str, str, str]] = field(default_factory=set)
    excludes: list[str] = field(default_factory=list)

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
    return Baseline(path=path, allowed=allowed, excludes=excludes)


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


def parse_scan(output: str) -> list[Hit]:
    """Hits from the JSON detect-secrets prints (a baseline document)."""
    start = output.find("{")
    if start < 0:
        raise ValueError("no JSON in detect-secrets output")
    data = json.loads(output[start:])
    return [
        Hit(
            kind=str(entry["type"]),
            file=str(file),
            line=int(entry.get("line_number") or 0),
            hashed=str(entry["hashed_secret"]),
        )
        for file, entries in sorted(data.get("results", {}).items())
        for entry in entries
    ]


def run_scan(runner: Runner, cwd: Path, files: Sequence[str]) -> list[Hit]:
    """Run `detect-secrets scan` on `files` (relative to `cwd`) in chunks. Its stdout
    holds hashes, never values, so logging it is safe; it is not echoed (it is long)."""
    hits: list[Hit] = []
    for i in range(0, len(files), _CHUNK):
        chunk = list(files[i : i + _CHUNK])
        res = runner.run(
            ["detect-secrets", "scan", "--no-verify", *chunk],
            cwd=cwd,
            capture=True,
            echo_output=False,
        )
        if not res.ok:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise PipelineError(f"detect-secrets failed (exit {res.returncode}): {last}")
        try:
            hits += parse_scan(res.stdout)
        except (ValueError, KeyError, TypeError) as err:
            raise PipelineError(f"detect-secrets printed no usable report: {err}") from None
    return hits


def recover_value(line: str, hashed: str) -> str | None:
    """The substring of `line` whose SHA-1 is `hashed` (detect-secrets' hash), if any."""

    def sha(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    text = line.rstrip("\r\n")
    if len(text) <= _EXHAUSTIVE_LINE:
        n = len(text)
        # Longest first: a secret is more likely a long token than a short one.
        for size in range(n, 0, -1):
            for start in range(0, n - size + 1):
                if sha(text[start : start + size]) == hashed:
                    return text[start : start + size]
        return None
    for token in re.findall(r"[^\s'\"`=:,;()<>\[\]{}]+", text):
        if sha(token) == hashed:
            return token
    return None


def _line_of(content: str, number: int) -> str:
    lines = content.splitlines()
    return lines[number - 1] if 0 < number <= len(lines) else ""


def history_hits(
    runner: Runner, root: Path, patterns: Sequence[re.Pattern[str]]
) -> tuple[list[Hit], dict[str, str]]:
    """Scan every blob reachable from any ref. Returns the hits (file = original path,
    commit = the first commit that has the blob) and {hit key: line text} for masking."""
    objects = _git(root, ["rev-list", "--all", "--objects"]).decode("utf-8", errors="replace")
    paths: dict[str, str] = {}
    for row in objects.splitlines():
        sha, _, path = row.partition(" ")
        if path and not excluded(path, patterns):
            paths.setdefault(sha, path)
    if not paths:
        return [], {}
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
        return [], {}
    data = _git(root, ["cat-file", "--batch"], stdin="\n".join(blobs).encode())
    with tempfile.TemporaryDirectory(prefix="secrets-history-") as tmp:
        base = Path(tmp)
        files: list[str] = []
        contents: dict[str, str] = {}
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
            contents[sha[:16]] = body.decode("utf-8", errors="replace")
        raw_hits = run_scan(runner, base, files)
    hits: list[Hit] = []
    lines: dict[str, str] = {}
    by_prefix = {sha[:16]: sha for sha in blobs}
    for hit in raw_hits:
        prefix, _, path = hit.file.partition("/")
        sha = by_prefix.get(prefix, prefix)
        log = _git(root, ["log", "--all", "--reverse", "--format=%h", f"--find-object={sha}"])
        commit = (log.decode().split() or [sha[:12]])[0]
        real = Hit(hit.kind, path, hit.line, hit.hashed, commit)
        hits.append(real)
        lines[_key(real)] = _line_of(contents.get(prefix, ""), hit.line)
    return hits, lines


def _key(hit: Hit) -> str:
    return f"{hit.commit}:{hit.file}:{hit.line}:{hit.hashed}"


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
    hits = run_scan(runner, root, files) if files else []
    line_text: dict[str, str] = {}
    for hit in hits:
        try:
            content = (root / hit.file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            content = ""
        line_text[_key(hit)] = _line_of(content, hit.line)
    if history:
        if not in_git(root):
            raise ConfigError(
                f"history scan needs a git repository; {root} is not in one "
                "(drop --history or [tool.pipeline.security] scan_history)"
            )
        seen = {(h.file, h.hashed) for h in hits}
        old, old_lines = history_hits(runner, root, patterns)
        for hit in old:
            if (hit.file, hit.hashed) not in seen:
                seen.add((hit.file, hit.hashed))
                hits.append(hit)
                line_text[_key(hit)] = old_lines.get(_key(hit), "")
    # Register every recovered value before any finding is printed.
    values = {_key(h): recover_value(line_text.get(_key(h), ""), h.hashed) for h in hits}
    runner.redact.add(v for v in values.values() if v)
    findings = []
    allowed = 0
    for hit in hits:
        if baseline.allows(hit):
            allowed += 1
            continue
        value = values[_key(hit)]
        shown = mask_value(value) if value else "(value hidden)"
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
