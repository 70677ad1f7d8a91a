"""`invoke ci` and the other flows: plan the graph, run it, print the gate table, write
`summary.md`. The invoke tasks are one call into `run_flow`."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from ci import report, settings
from ci.console import MaskedStream
from ci.flow import Executor, MaskChannel, ProcessLauncher, nox_command, plan
from ci.redact import Redactor, add_mask_lines, secrets_from_env


def run_flow(
    root: Path,
    stages: Sequence[str] | None,
    *,
    parallelism: int = 0,
    fail_fast: bool = False,
) -> tuple[int, str]:
    """Run `stages` (None: the whole pipeline) of project `root` as a graph.

    Returns (exit code, one closing line). Raises PipelineError for bad input before
    anything runs. Everything printed is masked; under GitHub Actions the secrets are
    registered with the runner (`::add-mask::`) on its real terminal only.
    """
    env = dict(os.environ)
    cfg = settings.load(root, env)
    redactor = Redactor(secrets_from_env(env, cfg.secret_env))
    steps = plan(stages, cfg.budget, cfg.timeout)
    github = env.get("GITHUB_ACTIONS") == "true"
    out = MaskedStream(sys.stdout, redactor)
    channel: MaskChannel | None = None
    if github:
        for line in add_mask_lines(redactor.values):
            out.raw_write(line + "\n")
        channel = MaskChannel(out.raw_write)
    names = " → ".join(
        s.name + (f" (after {', '.join(s.needs)})" if s.needs else "") for s in steps
    )
    mode = "fail-fast" if fail_fast else "a failure blocks only what depends on it"
    out.write(f"plan: {names}; {mode}\n")
    try:
        launcher = ProcessLauncher(
            nox_command(root / "noxfile.py"),
            env,
            mask_fd=channel.write_fd if channel else None,
        )
        outcome = Executor(
            steps,
            cfg.out_dir,
            launcher,
            parallelism=parallelism or cfg.parallelism,
            fail_fast=fail_fast,
            stream=out,
            github=github,
            grace_s=cfg.cancel_grace,
            redact=redactor,
        ).run()
    finally:
        if channel is not None:
            channel.close()
    if outcome.interrupted:
        # Everything is torn down; we are on our way out with 130. A late second signal
        # (GitHub's SIGTERM after SIGINT) must not turn that into a kill.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    out.write("\n" + report.table(outcome.results) + "\n")
    summary = report.write_summary(
        cfg.out_dir, outcome.results, env.get("GITHUB_STEP_SUMMARY"), redactor
    )
    out.write(f"results: {cfg.out_dir}/<stage>.json   summary: {summary}\n")
    out.finish()
    code = outcome.exit_code
    if outcome.interrupted:
        return code, "interrupted: running stages were cancelled and torn down"
    if code:
        red = [r.stage for r in outcome.results if r.blocking and not r.status.ok]
        return code, f"pipeline failed: {', '.join(red)}"
    return 0, "pipeline passed"
