"""security: three blocking checks, each reported on its own.

- advisories: `cargo audit --deny warnings --json` on the workspace's Cargo.lock;
- policy: `cargo deny check` (advisories, bans, licenses, sources) against deny.toml;
- secrets: detect-secrets over the working tree (and all of git history with `--history`).

Findings go to the stage JSON and to `<artifacts>/security.sarif` (one SARIF run per
check). Offline mode (`[tool.pipeline.security] offline = true` + `advisory_db`) uses a
local advisory database and fetches nothing. Options: `nox -s security -- --history`,
`-- --only secrets` (repeatable).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ci import tools
from ci.errors import ConfigError, PipelineError, ToolMissing, WorkspaceError
from ci.result import CheckResult, Finding, StageResult, Status, atomic_write
from ci.security import advisory_db, deps, sarif, secrets
from ci.stage import Clock, StageContext

CHECKS = ("advisories", "policy", "secrets")


@dataclass(frozen=True)
class Options:
    """The security stage's settings, read once from `[tool.pipeline.security]` + posargs."""

    checks: tuple[str, ...]
    db: advisory_db.AdvisoryDb
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


def options(ctx: StageContext) -> Options:
    """Read settings and arguments; ConfigError on anything malformed."""
    sec = ctx.settings.section("security")
    args = _parse_args(ctx.posargs)
    checks = tuple(args.only) or tuple(c for c in CHECKS if c in sec.strings("checks", CHECKS))
    unknown = set(sec.strings("checks", CHECKS)) - set(CHECKS)
    if unknown:
        raise ConfigError(
            f"[tool.pipeline] security.checks: unknown {', '.join(sorted(unknown))}; "
            f"known: {', '.join(CHECKS)}"
        )
    offline = sec.flag("offline", False)
    deny_config = sec.path("deny_config", "deny.toml")
    return Options(
        checks=checks,
        db=advisory_db.resolve(offline, sec.path("advisory_db", "") if offline else None),
        deny_config=deny_config or ctx.settings.root / "deny.toml",
        baseline=sec.path("secrets_baseline", ".secrets.baseline", base=ctx.workspace),
        history=args.history or sec.flag("scan_history", False),
        unmaintained=sec.choice("unmaintained", ("warn", "deny"), "warn"),
        exclude=tuple(sec.strings("exclude_paths")),
        install_tools=sec.flag("install_tools", True),
    )


def _lock_text(ctx: StageContext) -> str:
    lock = ctx.workspace / "Cargo.lock"
    try:
        return lock.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkspaceError(
            f"{lock} not found: run `cargo generate-lockfile` in {ctx.workspace} and commit it"
        ) from None
    except OSError as err:
        raise WorkspaceError(f"{lock}: cannot read: {err.strerror}") from None


def _first_line(output: str, default: str) -> str:
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("{"):  # cargo-deny logs JSON: keep only its message
            with contextlib.suppress(ValueError, AttributeError):
                text = str(json.loads(text)["fields"]["message"]).splitlines()[0].strip()
        if text and ("error" in text.lower() or "fail" in text.lower()):
            return text[:300]
    return default


OFFLINE_HINT = (
    "; without network access use a local advisory-db checkout: "
    "CIPIPE_SECURITY__OFFLINE=true CIPIPE_SECURITY__ADVISORY_DB=/path/to/advisory-db"
)


def _with_fetch_hint(reason: str, opts: Options) -> str:
    """Say how to run air-gapped when the advisory database could not be fetched."""
    if not opts.db.offline and "fetch" in reason.lower():
        return reason + OFFLINE_HINT
    return reason


def run_advisories(
    ctx: StageContext, opts: Options, lock_text: str, chk: CheckResult
) -> list[Finding]:
    """`cargo audit` on the lock file, gated on its JSON report."""
    chk.tool_version = tools.ensure(ctx.runner, "cargo-audit", auto_install=opts.install_tools)
    ctx.runner.say(f"cargo-audit {chk.tool_version}; advisory database: {opts.db.describe()}")
    cmd = ["cargo", "audit", "--json", "--deny", "warnings", "--file", "Cargo.lock"]
    if opts.db.path is not None:
        cmd += ["--db", str(opts.db.path), "--no-fetch"]
    res = ctx.cargo(cmd[1:], capture=True)
    try:
        findings = deps.parse_audit_json(res.stdout, lock_text, unmaintained=opts.unmaintained)
    except ValueError:
        chk.status = Status.ERROR
        reason = _first_line(res.stderr, f"cargo audit failed (exit {res.returncode})")
        chk.summary = _with_fetch_hint(reason, opts)
        raise PipelineError(chk.summary) from None
    errors = [f for f in findings if f.severity == "error"]
    chk.status = Status.FAILED if errors else Status.PASSED
    chk.summary = (f"{len(errors)} advisory finding(s)" if errors else "no advisories") + (
        f", {len(findings) - len(errors)} warning(s)" if len(findings) > len(errors) else ""
    )
    return findings


def run_policy(ctx: StageContext, opts: Options, lock_text: str, chk: CheckResult) -> list[Finding]:
    """`cargo deny check` with the project's deny.toml, gated on its JSON diagnostics."""
    chk.tool_version = tools.ensure(ctx.runner, "cargo-deny", auto_install=opts.install_tools)
    text = advisory_db.read_deny_config(opts.deny_config)
    config = advisory_db.prepare_deny(opts.db, text, ctx.artifacts_dir) or opts.deny_config
    ctx.runner.say(f"cargo-deny {chk.tool_version}; policy {opts.deny_config}")
    cmd = ["deny", "--format", "json", "--color", "never", "--workspace"]
    cmd += ["--manifest-path", str(ctx.workspace / "Cargo.toml"), "--config", str(config)]
    cmd += [*(["--offline"] if opts.db.offline else []), "check"]
    # The JSON diagnostics arrive on stderr: capture them quietly and print findings instead.
    res = ctx.runner.run(
        ["cargo", *cmd], cwd=ctx.workspace, env=ctx.cargo_env(), capture=True, echo_output=False
    )
    config_name = _rel(opts.deny_config, ctx.workspace)
    report = deps.parse_deny_json(
        res.stderr, lock_text, config_file=config_name, unmaintained=opts.unmaintained
    )
    if not report.errors and not res.ok:
        # No summary line: cargo-deny did not get to check anything.
        reason = _first_line(res.stderr, f"cargo deny failed (exit {res.returncode})")
        if "stale" in reason:
            reason += f" (update {opts.db.path} or raise [advisories] maximum-db-staleness)"
        chk.status = Status.ERROR
        chk.summary = _with_fetch_hint(reason, opts)
        raise PipelineError(chk.summary)
    for finding in report.findings:
        if finding.severity != "error":
            ctx.runner.say(f"warning: {finding.one_line()}")
    errors = [f for f in report.findings if f.severity == "error"]
    chk.status = Status.FAILED if errors else Status.PASSED
    by_check = ", ".join(f"{k} {v}" for k, v in sorted(report.errors.items()) if v)
    chk.summary = f"{len(errors)} error(s) ({by_check})" if errors else "policy satisfied"
    return report.findings


def run_secrets(ctx: StageContext, opts: Options, chk: CheckResult) -> list[Finding]:
    """detect-secrets over the tree (and history), minus the reviewed baseline."""
    ver = tools.version("detect-secrets")
    if ver is None:
        raise ToolMissing("detect-secrets", "pip install -e . (pins detect-secrets)")
    chk.tool_version = ver
    baseline = secrets.load_baseline(opts.baseline)
    where = f"baseline {_rel(baseline.path, ctx.workspace)}" if baseline.path else "no baseline"
    scope = "working tree + history" if opts.history else "working tree"
    ctx.runner.say(f"detect-secrets {ver}; {scope}; {where}")
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
    return result.findings


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
    """Run the selected security checks; every check runs even when an earlier one fails."""
    opts = options(ctx)
    needs_lock = {"advisories", "policy"} & set(opts.checks)
    lock_text = _lock_text(ctx) if needs_lock else ""
    clock = Clock()
    per_check: dict[str, list[Finding]] = {}
    errors: list[str] = []
    for name in opts.checks:
        with ctx.runner.group(name), clock.check(name) as chk:
            try:
                if name == "advisories":
                    found = run_advisories(ctx, opts, lock_text, chk)
                elif name == "policy":
                    found = run_policy(ctx, opts, lock_text, chk)
                else:
                    found = run_secrets(ctx, opts, chk)
            except PipelineError as err:
                # Bad input (config, workspace, missing tool) stops the stage with one line; a
                # tool that ran and failed is an error of its check and the others still run.
                if type(err) is not PipelineError:
                    raise
                chk.status = Status.ERROR
                chk.summary = str(err)
                found = [Finding(name, str(err), rule="check-error")]
                errors.append(f"{name}: {err}")
            if chk.tool_version:
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
            findings=per_check[c.name],
        )
        for c in clock.checks
    ]
    atomic_write(sarif_path, sarif.dumps(runs))
    return clock.result(ctx.name, {"sarif": str(sarif_path)})
