"""security: three blocking checks, each reported on its own.

- advisories: `cargo audit --deny warnings --json` on the workspace's Cargo.lock (none
  committed: one freshly resolved in a scratch copy, ci/security/lockfile.py, and said so);
- policy: `cargo deny check` (advisories, bans, licenses, sources) against deny.toml;
- secrets: detect-secrets over the working tree (and all of git history with `--history`).

Findings go to the stage JSON and to `<artifacts>/security.sarif` (one SARIF run per
check). The advisory database is resolved once for both tools (ci/security/advisory_db.py):
a configured local checkout, else a fetch, else a cached copy with its age, else
"not checked" (an error, never a silent pass). Options: `nox -s security -- --history`,
`-- --only secrets` (repeatable).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ci import tools
from ci.contract import Clock, StageContext
from ci.errors import ConfigError, ToolMissing
from ci.result import CheckResult, Finding, StageResult, Status, atomic_write
from ci.security import advisory_db, deps, lockfile, sarif, secrets
from ci.settings import Settings

CHECKS = ("advisories", "policy", "secrets")
DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "deny.toml"
NO_LOCK = "not checked: no Cargo.lock to audit (see the lockfile check)"


@dataclass(frozen=True)
class Options:
    """The security stage's settings, read once from `[tool.pipeline.security]` + posargs."""

    checks: tuple[str, ...]
    db: advisory_db.DbConfig
    deny_config: Path
    baseline: Path | None
    history: bool
    unmaintained: str
    exclude: tuple[str, ...]
    install_tools: bool


def _parse_args(posargs: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s security --", add_help=False)
    parser.add_argument("--history", action="store_true", help="also scan all git history")
    parser.add_argument("--only", action="append", choices=CHECKS, default=[])
    args, rest = parser.parse_known_args(list(posargs))
    if rest:
        raise ConfigError(
            f"security: unknown argument(s) {' '.join(rest)}; use --history or --only CHECK"
        )
    return args


def db_config(settings: Settings) -> advisory_db.DbConfig:
    """Where the advisory database comes from (`[tool.pipeline.security]`)."""
    sec = settings.section("security")
    env = settings.env
    default_home = env.get("CARGO_HOME") or Path(env.get("HOME", "~")).expanduser() / ".cargo"
    cargo_home = sec.path("cargo_home") or Path(default_home)
    return advisory_db.DbConfig(
        configured=sec.path("advisory_db"),
        offline=sec.flag("offline"),
        cache=sec.path("advisory_cache") or cargo_home / "advisory-db",
        fetch_timeout=sec.number("fetch_timeout", minimum=1),
        warn_age_days=sec.number("warn_age_days", minimum=0),
        max_age_days=sec.number("max_age_days", minimum=1),
        cargo_home=cargo_home,
    )


def cache_inputs(settings: Settings) -> dict[str, str] | None:
    """What a replayed security result also depends on: the advisory database (its commit
    and its age class: fresh, old, too old) and the cargo-deny policy file. None (run
    the stage) when the database is due to be fetched again (`fetch_interval`) or
    there is none to identify. With `scan_history`, also the git history (every ref).
    A workspace that commits no lock file is never replayed: its graph is resolved
    afresh by every run and changes as the registry does."""
    if not lockfile.committed(settings.workspace):
        return {"uncacheable": "no Cargo.lock committed: the audited graph is resolved afresh"}
    cfg = db_config(settings)
    sec = settings.section("security")
    git = advisory_db.Git(settings.env)
    now = time.time()
    if cfg.configured is not None:
        head = git.head(cfg.configured)
        path = cfg.configured
    else:
        if not cfg.offline and now - advisory_db.fetched_at(cfg.cache) > sec.number(
            "fetch_interval", minimum=0
        ):
            return None  # a run fetches; until it has, nothing can be replayed
        copies = [(p, h) for p in advisory_db.candidates(cfg) if (h := git.head(p))]
        if not copies:
            return None
        path, head = max(copies, key=lambda item: item[1][1])
    if head is None:
        return None
    age = (now - head[1]) / advisory_db.DAY_S
    age_class = (
        "refused" if age > cfg.max_age_days else "old" if age > cfg.warn_age_days else "fresh"
    )
    deny = policy_file(settings)
    try:
        policy = deny.read_text(encoding="utf-8")
    except OSError:
        return None
    found = {"advisory_db": f"{path}:{head[0]}:{age_class}", "deny_config": policy}
    if sec.flag("scan_history"):
        history = _history_id(settings)
        if history is None:
            return {"uncacheable": "scan_history is on and the git history cannot be read"}
        found["history"] = history
    return found


def _history_id(settings: Settings) -> str | None:
    """What the history scan reads, named: every ref and what it points at (a new
    commit, branch, tag or stash is new history to scan)."""
    from ci.cache.files import run_git

    refs = run_git(settings.workspace, "for-each-ref", "--format=%(objectname) %(refname)")
    head = run_git(settings.workspace, "rev-parse", "--verify", "--quiet", "HEAD")
    if refs is None:
        return None
    return (head or b"no HEAD").decode().strip() + "\n" + refs.decode("utf-8", "replace")


def policy_file(settings: Settings) -> Path:
    """The cargo-deny policy: the workspace's own (security.deny_config of its
    configuration, else a deny.toml beside its Cargo.toml), else the pipeline's default
    ci/deny.toml. Another project's policy (the reference's) never judges it."""
    return settings.config_path(settings.section("security"), "deny_config") or DEFAULT_POLICY


def options(ctx: StageContext) -> Options:
    """Read settings and arguments; ConfigError on anything malformed."""
    sec = ctx.settings.section("security")
    args = _parse_args(ctx.posargs)
    configured = sec.strings("checks")
    unknown = set(configured) - set(CHECKS)
    if unknown:
        raise ConfigError(
            f"[tool.pipeline] security.checks: unknown {', '.join(sorted(unknown))}; "
            f"known: {', '.join(CHECKS)}"
        )
    checks = tuple(args.only) or tuple(c for c in CHECKS if c in configured)
    return Options(
        checks=checks,
        db=db_config(ctx.settings),
        deny_config=policy_file(ctx.settings),
        baseline=sec.path("secrets_baseline", base=ctx.workspace),
        history=args.history or sec.flag("scan_history"),
        unmaintained=sec.choice("unmaintained", ("warn", "deny")),
        exclude=tuple(sec.strings("exclude_paths")),
        install_tools=ctx.settings.top.flag("install_tools"),
    )


def _first_line(output: str, default: str) -> str:
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("{"):  # cargo-deny logs JSON: keep only its message
            with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
                text = str(json.loads(text)["fields"]["message"]).splitlines()[0].strip()
        if text and ("error" in text.lower() or "fail" in text.lower()):
            return text[:300]
    return default


def _cannot_check(chk: CheckResult, reason: str, rule: str = "check-error") -> list[Finding]:
    """The check could not run: an error of its own (the other checks still run)."""
    chk.status = Status.ERROR
    chk.summary = reason
    return [Finding(chk.name, reason, rule=rule)]


def not_checked(db: advisory_db.AdvisoryDb) -> str:
    """The one line for advisories that could not be checked, with the offline fix."""
    return f"not checked: {db.unavailable}; {advisory_db.OFFLINE_FIX}"


def find_db(ctx: StageContext, opts: Options) -> advisory_db.AdvisoryDb:
    """Resolve the advisory database once for both checks, saying where it came from."""
    git = advisory_db.Git(ctx.runner.base_env)
    if opts.db.configured is None and not opts.db.offline:
        ctx.runner.say(
            f"advisory database: fetching {advisory_db.DEFAULT_URL} into {opts.db.cache} "
            f"(up to {opts.db.fetch_timeout:.0f}s)"
        )
    db = advisory_db.resolve(opts.db, git)
    ctx.runner.say(f"advisory database: {db.describe()}")
    if db.warning:
        ctx.runner.say(f"warning: {db.warning}")
    return db


def run_advisories(
    ctx: StageContext,
    opts: Options,
    db: advisory_db.AdvisoryDb,
    lock: lockfile.LockFile,
    chk: CheckResult,
) -> list[Finding]:
    """`cargo audit` on the lock file against the resolved database, gated on its JSON."""
    if not db.usable:
        return _cannot_check(chk, not_checked(db), rule="not-checked")
    if lock.path is None:
        return _cannot_check(chk, NO_LOCK, rule="not-checked")
    exe, chk.tool_version = tools.resolve(
        ctx.runner, "cargo-audit", auto_install=opts.install_tools
    )
    ctx.runner.say(f"cargo-audit {chk.tool_version}")
    assert db.path is not None
    cmd = [exe, "audit", "--json", "--deny", "warnings", "--file", str(lock.path)]
    cmd += ["--db", str(db.path), "--no-fetch"]
    res = ctx.runner.run(cmd, cwd=lock.manifest_dir, env=ctx.cargo_env(), capture=True)
    try:
        findings = deps.parse_audit_json(res.stdout, lock.text, unmaintained=opts.unmaintained)
    except ValueError:
        return _cannot_check(
            chk, _first_line(res.stderr, f"cargo audit failed (exit {res.returncode})")
        )
    errors = [f for f in findings if f.severity == "error"]
    chk.status = Status.FAILED if errors else Status.PASSED
    chk.summary = (f"{len(errors)} advisory finding(s)" if errors else "no advisories") + (
        f", {len(findings) - len(errors)} warning(s)" if len(findings) > len(errors) else ""
    )
    if db.warning:
        chk.summary += f" (warning: {db.warning})"
    if lock.fresh:
        chk.summary += f" in a freshly resolved {lockfile.LOCK} (none is committed)"
    return findings


def run_policy(
    ctx: StageContext,
    opts: Options,
    db: advisory_db.AdvisoryDb,
    lock: lockfile.LockFile,
    chk: CheckResult,
) -> list[Finding]:
    """`cargo deny check` with the project's deny.toml, gated on its JSON diagnostics.
    Without a usable advisory database it checks bans, licences and sources only."""
    if lock.path is None:
        return _cannot_check(chk, NO_LOCK, rule="not-checked")
    exe, chk.tool_version = tools.resolve(ctx.runner, "cargo-deny", auto_install=opts.install_tools)
    ctx.runner.say(f"cargo-deny {chk.tool_version}; policy {_rel(opts.deny_config, ctx.workspace)}")
    config_data = advisory_db.read_deny_config(opts.deny_config)
    which = ["check"]
    if db.usable:
        config = advisory_db.prepare_deny(db, config_data, opts.db.max_age_days, ctx.artifacts_dir)
    else:
        config = opts.deny_config
        which += ["bans", "licenses", "sources"]
        ctx.runner.say("cargo-deny: advisories not checked (no database); bans, licences, sources")
    # cargo-deny --offline also resolves crates offline: fetch them first (a no-op when
    # they are in cargo's cache; air-gapped machines have them there).
    where = lock.manifest_dir  # the workspace, or the scratch copy beside a fresh lock
    fetched = ctx.runner.run(
        ["cargo", "fetch", "--locked"], cwd=where, env=ctx.cargo_env(), capture=True
    )
    if not fetched.ok:
        return _cannot_check(chk, _first_line(fetched.stderr, "cargo fetch --locked failed"))
    cmd = [exe, "deny", "--format", "json", "--color", "never", "--workspace"]
    cmd += ["--manifest-path", str(where / "Cargo.toml"), "--config", str(config)]
    cmd += ["--offline", *which]
    # The JSON diagnostics arrive on stderr: capture them quietly and print findings instead.
    res = ctx.runner.run(cmd, cwd=where, env=ctx.cargo_env(), capture=True, echo_output=False)
    config_name = _rel(opts.deny_config, ctx.workspace)
    report = deps.parse_deny_json(
        res.stderr, lock.text, config_file=config_name, unmaintained=opts.unmaintained
    )
    if not report.errors and not res.ok:
        # No summary line: cargo-deny did not get to check anything.
        return _cannot_check(
            chk, _first_line(res.stderr, f"cargo deny failed (exit {res.returncode})")
        )
    for finding in report.findings:
        if finding.severity != "error":
            ctx.runner.say(f"warning: {finding.one_line()}")
    errors = [f for f in report.findings if f.severity == "error"]
    by_check = ", ".join(f"{k} {v}" for k, v in sorted(report.errors.items()) if v)
    if errors:
        chk.status = Status.FAILED
        chk.summary = f"{len(errors)} error(s) ({by_check})"
    elif not db.usable:
        chk.status = Status.PASSED  # the advisories check reports the missing database
        chk.summary = "bans, licences and sources satisfied (advisories not checked)"
    else:
        chk.status = Status.PASSED
        chk.summary = "policy satisfied"
    if lock.fresh:
        chk.summary += f" (freshly resolved {lockfile.LOCK})"
    if opts.deny_config == DEFAULT_POLICY:
        chk.summary += " (the pipeline's default policy ci/deny.toml: the workspace has none)"
    return report.findings


def run_secrets(ctx: StageContext, opts: Options, chk: CheckResult) -> list[Finding]:
    """detect-secrets over the tree (and history), minus the reviewed baseline."""
    chk.tool_version = _python_version("detect-secrets")
    baseline = secrets.load_baseline(opts.baseline)
    where = f"baseline {_rel(baseline.path, ctx.workspace)}" if baseline.path else "no baseline"
    scope = "working tree + history" if opts.history else "working tree"
    ctx.runner.say(f"detect-secrets {chk.tool_version}; {scope}; {where}")
    result = secrets.scan(
        ctx.runner,
        ctx.workspace,
        baseline=baseline,
        extra_excludes=opts.exclude,
        history=opts.history,
    )
    chk.status = Status.FAILED if result.findings else Status.PASSED
    allowed = f", {result.allowed} allowed by baseline" if result.allowed else ""
    chk.summary = (
        f"{len(result.findings)} secret(s) in {result.files} file(s){allowed}"
        if result.findings
        else f"no secrets in {result.files} file(s){allowed}"
    )
    for finding in result.findings:
        ctx.runner.say(f"found: {finding.one_line()}")
    return result.findings


def _python_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise ToolMissing(dist, "run `nox -s security` (its own virtualenv pins it)") from None


def _rel(path: Path | None, base: Path) -> str:
    if path is None:
        return ""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


_TOOLS = {
    "advisories": ("cargo-audit", "https://rustsec.org"),
    "policy": ("cargo-deny", "https://embarkstudios.github.io/cargo-deny/"),
    "secrets": ("detect-secrets", "https://github.com/Yelp/detect-secrets"),
}


def run(ctx: StageContext) -> StageResult:
    """Run the selected security checks; every check runs even when an earlier one fails
    or cannot run (an unreachable advisory database is "not checked", never a pass)."""
    opts = options(ctx)
    needs_lock = {"advisories", "policy"} & set(opts.checks)
    clock = Clock()
    artifacts: dict[str, str] = {}
    per_check: dict[str, list[Finding]] = {}
    with tempfile.TemporaryDirectory(prefix="cipipe-security-") as scratch:
        lock = lockfile.LockFile("", ctx.workspace, None)
        if needs_lock:
            lock = _lockfile(ctx, opts, Path(scratch), clock, artifacts)
        db = find_db(ctx, opts) if needs_lock else advisory_db.AdvisoryDb(None, "unused")
        for name in opts.checks:
            with ctx.runner.group(name), clock.check(name) as chk:
                if name == "advisories":
                    found = run_advisories(ctx, opts, db, lock, chk)
                elif name == "policy":
                    found = run_policy(ctx, opts, db, lock, chk)
                else:
                    found = run_secrets(ctx, opts, chk)
                ctx.runner.say(f"{name}: {chk.status.value} ({chk.summary})")
            per_check[name] = found
            clock.findings += found
    sarif_path = ctx.artifacts_dir / "security.sarif"
    runs = [
        sarif.ToolRun(
            check=c.name,
            tool=_TOOLS[c.name][0],
            version=c.tool_version,
            information_uri=_TOOLS[c.name][1],
            findings=[f.masked(ctx.runner.redact) for f in per_check[c.name]],
        )
        for c in clock.checks
        if c.name in _TOOLS
    ]
    atomic_write(sarif_path, sarif.dumps(runs))
    return clock.result(ctx.name, {"sarif": str(sarif_path), **artifacts})


def _lockfile(
    ctx: StageContext, opts: Options, scratch: Path, clock: Clock, artifacts: dict[str, str]
) -> lockfile.LockFile:
    """The committed lock file, or one freshly resolved in a scratch copy; a `lockfile`
    check says so (no check when the workspace commits one: nothing to say)."""
    lock = lockfile.resolve(
        ctx.runner, ctx.workspace, scratch, ctx.cargo_env(), offline=opts.db.offline
    )
    if not lock.fresh:
        return lock
    with ctx.runner.group("lockfile"), clock.check("lockfile") as chk:
        chk.summary = lock.describe()
        if lock.path is None:
            chk.status = Status.ERROR
            clock.findings.append(Finding("lockfile", lock.problem, rule="no-lockfile"))
        else:
            kept = ctx.artifacts_dir / lockfile.LOCK  # the graph audited, for the record
            atomic_write(kept, lock.text)
            artifacts["lockfile"] = str(kept)
        ctx.runner.say(f"lockfile: {chk.status.value} ({chk.summary})")
    return lock
