"""lint: `cargo fmt --all --check`, then `cargo clippy --all-targets` with the configured
feature set ([cargo]) and `-D warnings`.

Both checks always run so one push shows every problem; either failing fails the stage.
Extra arguments (`nox -s lint -- --features x`) are passed to cargo clippy.
"""

from __future__ import annotations

from pathlib import Path

from ci import features
from ci.contract import Clock, StageContext
from ci.parsers import parse_cargo_messages, parse_fmt_check, relpath
from ci.result import Finding, StageResult, Status


def run(ctx: StageContext) -> StageResult:
    """Run the fmt and clippy checks and gate on any finding."""
    clock = Clock()
    with ctx.runner.group("fmt"), clock.check("fmt") as chk:
        res = ctx.cargo(["fmt", "--all", "--check"], capture=True)
        findings = parse_fmt_check(res.stdout, ctx.workspace)
        if res.ok:
            chk.summary = "formatted"
        else:
            chk.status = Status.FAILED
            if findings:
                chk.summary = f"{len(findings)} file(s) need formatting"
                for f in findings:
                    ctx.runner.say(f"needs formatting: {f.file}")
            else:  # rustfmt could not parse a file, or cargo itself failed
                findings = [Finding("fmt", _first_error(res.output) or "cargo fmt failed")]
                chk.summary = findings[0].message
        clock.findings += findings

    with ctx.runner.group("clippy"), clock.check("clippy") as chk:
        # The configured feature set, as every test build uses it: --all-features would
        # lint combinations the crate never builds (mutually exclusive features, no_std).
        args = ["clippy", "--workspace", "--all-targets"]
        args += features.configured(ctx.settings).cargo_args()
        # Its own target dir: clippy's check build never waits for the test build's lock
        # (`invoke ci` starts building the tests while lint runs) nor invalidates it.
        args += ["--message-format=json", *ctx.posargs, "--", "-D", "warnings"]
        res = ctx.cargo(args, capture=True, env={"CARGO_TARGET_DIR": str(clippy_dir(ctx))})
        diags = parse_cargo_messages(res.stdout)
        for d in diags:
            ctx.runner.say(d.rendered.rstrip())
        findings = [
            Finding(
                check="clippy",
                message=d.message,
                rule=d.code,
                file=relpath(d.file, ctx.workspace) if d.file else None,
                line=d.line,
                severity="error" if d.level == "error" else "warning",
            )
            for d in diags
        ]
        if res.ok:
            chk.summary = "no warnings"
        else:
            chk.status = Status.FAILED
            if not findings:
                findings = [Finding("clippy", _first_error(res.output) or "cargo clippy failed")]
            chk.summary = f"{len(findings)} diagnostic(s)"
        clock.findings += findings

    return clock.result(ctx.name)


def clippy_dir(ctx: StageContext) -> Path:
    """`<target dir>/clippy`."""
    env_dir = ctx.settings.env.get("CARGO_TARGET_DIR")
    base = ctx.settings.cargo_target_dir or (Path(env_dir) if env_dir else ctx.workspace / "target")
    return base / "clippy"


def _first_error(output: str) -> str:
    """The first line mentioning an error, for a one-line reason."""
    for line in output.splitlines():
        if "error" in line.lower():
            return line.strip()
    return next((line.strip() for line in output.splitlines() if line.strip()), "")
