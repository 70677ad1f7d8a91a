"""The `deploy` invoke collection: `deploy.staging`, `deploy.registry`, and the
production tasks of deploy/rollout (`deploy.production`, `deploy.approve`,
`deploy.approvals`, `deploy.proxy`). tasks.py adds it with `collection(ROOT)`; the
staging flow lives in deploy.staging."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invoke import Collection, Context, task
from invoke.exceptions import Exit

STAGING_HELP = {
    "dry_run": "probe everything and print the plan; build, push and change nothing",
    "manifest": "the release manifest (default: <output_dir>/release/manifest.json)",
}


def staging(
    root: Path, *, dry_run: bool = False, manifest: str = "", env: Mapping[str, str] | None = None
) -> int:
    """Run `invoke deploy.staging` for project `root`; returns the exit code. Everything
    printed is masked; expected failures are one `error:` line; the result is written
    to `<output_dir>/staging.json` in every case."""
    from ci import settings as settings_mod
    from ci.console import AddMask, masked_stdio
    from ci.contract import EXIT_INTERNAL, Clock
    from ci.errors import Interrupted, PipelineError
    from ci.interrupts import Interrupts
    from ci.redact import Redactor, secrets_from_env
    from ci.result import Status, write_result
    from ci.runner import Runner

    env = dict(os.environ if env is None else env)
    redactor = Redactor(secrets_from_env(env))
    start = time.monotonic()
    clock = Clock()
    code, line, out_dir, budget = 0, "", None, 300.0
    outputs: dict[str, str] = {}
    runner: Runner | None = None
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(masked_stdio(redactor))
        redactor.on_add(AddMask(env, out))
        stack.enter_context(Interrupts())
        try:
            settings = settings_mod.load(root, env)
            redactor.add(secrets_from_env(env, settings.secret_env))
            out_dir, budget = settings.out_dir, settings.budget("staging")
            log = None if dry_run else out_dir / "staging.log"
            if log is not None:
                log.unlink(missing_ok=True)
            runner = stack.enter_context(
                Runner(
                    redactor,
                    log_path=log,
                    github=env.get("GITHUB_ACTIONS") == "true",
                    base_env=env,
                    pass_env=settings.top.strings("pass_env"),
                    secret_names=settings.secret_env,
                )
            )
            outputs = _deploy(settings, runner, clock, dry_run, manifest)
            line = "dry run: nothing built, pushed or changed" if dry_run else "staging deployed"
        except PipelineError as err:
            code, line = err.exit_code, f"error: {err}"
        except KeyboardInterrupt:
            code = Interrupted.exit_code
            line = "error: interrupted; the last good release was restored where one existed"
        except Exception as exc:  # a defect of the pipeline: one line, traceback in the log
            code = EXIT_INTERNAL
            where = out_dir / "staging.log" if out_dir is not None else "the log"
            line = f"error: internal error: {type(exc).__name__}: {exc} (traceback in {where})"
            if runner is not None:
                runner.log_only(traceback.format_exc())
        seconds = time.monotonic() - start
        if not dry_run and out_dir is not None:
            status = Status.PASSED if code == 0 else _status(code)
            result = clock.result("staging")
            result.status, result.duration_s, result.budget_s = status, round(seconds, 3), budget
            result.summary = line.removeprefix("error: ")
            result.outputs = outputs
            with contextlib.suppress(OSError):
                write_result(out_dir, result, redactor)
        over = " OVER BUDGET" if seconds > budget else ""
        timing = f"({seconds:.1f}s, budget {budget:.0f}s{over})"
        print(f"{line} {timing}", file=sys.stderr if code else sys.stdout, flush=True)
    return code


def _status(code: int) -> Any:
    from ci.result import Status
    from deploy.errors import E2EFailed, ReleaseUnhealthy, RollbackFailed

    if code in (E2EFailed.exit_code, ReleaseUnhealthy.exit_code, RollbackFailed.exit_code):
        return Status.FAILED
    if code == 70:
        return Status.INTERNAL
    return Status.CANCELLED if code == 130 else Status.ERROR


def _deploy(settings: Any, runner: Any, clock: Any, dry_run: bool, manifest: str) -> dict[str, str]:
    from deploy import config, notify
    from deploy.gather import gather, manifest_path
    from deploy.plan import make_plan, show
    from deploy.staging import StagingDeploy, close_quietly

    cfg = config.load(settings, "staging")
    runner.redact.add(cfg.secrets())
    notifier = notify.notifier(cfg.webhook)
    with clock.check("plan") as chk:
        facts, parts = gather(settings, cfg, runner, notifier, manifest_path(settings, manifest))
        chk.summary = f"{facts.release.version} -> {facts.host}"
    try:
        plan = make_plan(facts)
        for line in show(plan):
            runner.say(line)
        if dry_run:
            return {}
        flow = StagingDeploy(cfg, runner, parts, plan, clock)
        with contextlib.ExitStack() as stack:
            if parts.local_registry is not None:
                stack.enter_context(parts.local_registry.running(parts.registry))
            stack.enter_context(parts.stack.locked(_owner(facts.release.version)))
            try:
                flow.act()
            finally:
                flow.out.outputs.update(
                    version=facts.release.version, image=flow.out.image, url=cfg.url
                )
        return flow.out.outputs
    finally:
        close_quietly(parts)


def _owner(version: str) -> str:
    """Who holds the host's deploy lock: user, machine, pid, since when, what."""
    import getpass
    import socket
    from datetime import UTC, datetime

    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} since {since}, {version}"


def registry(root: Path, action: str, env: Mapping[str, str] | None = None) -> int:
    """Start, stop or show the local registry of `[staging] registry` (a loopback address)."""
    from ci import settings as settings_mod
    from ci.errors import PipelineError
    from deploy import config
    from deploy.registry import DistributionRegistry, LocalRegistry

    env = dict(os.environ if env is None else env)
    try:
        settings = settings_mod.load(root, env)
        target = config.registry_target(settings.section("staging"), env)
        if not target.loopback:
            raise config.PreconditionFailed(
                f"registry {target.address} is not on this machine's loopback: nothing to manage"
            )
        local = LocalRegistry(target.address, target.data_dir)
        probe = DistributionRegistry(target)
        if action == "start":
            pid = local.start_daemon(probe)
            print(f"registry {target.address} running (pid {pid}, storage {target.data_dir})")
        elif action == "stop":
            stopped = local.stop_daemon()
            print(f"registry {target.address} {'stopped' if stopped else 'was not started here'}")
        else:
            running = local.daemon_pid()
            state = f"running (pid {running})" if running else "not started here"
            answers = "answers" if probe.reachable() else "does not answer"
            print(f"registry {target.address}: {state}; {answers}")
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


def collection(root: Path) -> Collection:
    """The `deploy` task collection for the project at `root`."""

    @task(help=STAGING_HELP)
    def staging_task(c: Context, dry_run: bool = False, manifest: str = "") -> None:
        """Deploy the release to staging: image, registry, compose over SSH, health, smoke, e2e."""
        code = staging(root, dry_run=dry_run, manifest=manifest)
        if code:
            raise Exit(code=code)

    @task(help={"start": "start it in the background", "stop": "stop the one started here"})
    def registry_task(c: Context, start: bool = False, stop: bool = False) -> None:
        """The local image registry ([staging] registry): --start, --stop, or its state."""
        code = registry(root, "start" if start else "stop" if stop else "status")
        if code:
            raise Exit(code=code)

    ns = Collection("deploy")
    ns.add_task(staging_task, name="staging")
    ns.add_task(registry_task, name="registry")
    from deploy.rollout import invoke_tasks

    invoke_tasks.add(ns, root)
    return ns
