"""The `invoke release` task. tasks.py registers it with `make_task(ROOT)`; the flow
lives in ci.release.flow."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from invoke import Context, Task, task
from invoke.exceptions import Exit

HELP = {
    "tag": "the release tag, v + semantic version (v1.2.3, v1.2.3-rc.1); must match the crate",
    "dry_run": "check everything and print the plan; build, write and publish nothing",
    "target": "target triple to build for (default: the host's)",
    "allow_dirty": "local trial: build a dirty tree or a commit the tag does not point at",
    "publish": "publish the GitHub release (--no-publish stops after packaging)",
    "snapshot": "build HEAD (a main commit) for staging as <version>-main.g<commit>; "
    "never published, never a release",
}


def main(
    root: Path,
    tag: str,
    *,
    dry_run: bool = False,
    target: str = "",
    allow_dirty: bool = False,
    publish: bool = True,
    snapshot: bool = False,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run the release flow for project `root`; returns the exit code. Everything printed
    is masked (a token never reaches the terminal, the log or a file); under GitHub
    Actions the secrets are registered with `::add-mask::`. Expected failures are one
    `error:` line on stderr, never a traceback; Ctrl-C and SIGTERM stop cleanly."""
    from ci import settings as settings_mod
    from ci.console import AddMask, masked_stdio
    from ci.contract import StageContext
    from ci.errors import Interrupted, PipelineError
    from ci.interrupts import Interrupts
    from ci.redact import Redactor, secrets_from_env
    from ci.release.config import Options, ReleaseConfig
    from ci.release.flow import release
    from ci.release.version import parse_tag
    from ci.runner import Runner

    env = dict(os.environ if env is None else env)
    redactor = Redactor(secrets_from_env(env))
    if snapshot and tag:
        print("error: --snapshot builds HEAD under its own version: drop --tag", file=sys.stderr)
        return 2
    publish = publish and not snapshot
    opts = Options(tag, dry_run, target.strip() or None, allow_dirty, publish, snapshot)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(masked_stdio(redactor))
        redactor.on_add(AddMask(env, out))
        stack.enter_context(Interrupts())
        try:
            if not snapshot:
                parse_tag(tag)  # a malformed tag stops here: nothing run, nothing written
            settings = settings_mod.load(root, env)
            redactor.add(secrets_from_env(env, settings.secret_env))
            cfg = ReleaseConfig.from_settings(settings)
            log = None if dry_run else settings.out_dir / "release.log"
            if log is not None:
                log.unlink(missing_ok=True)
            runner = stack.enter_context(
                Runner(
                    redactor,
                    log_path=log,
                    github=env.get("GITHUB_ACTIONS") == "true",
                    base_env=env,  # the runner hands children this minus every secret
                    pass_env=settings.top.strings("pass_env"),
                    secret_names=settings.secret_env,
                )
            )
            settings.require_workspace()
            release(StageContext("release", settings, runner), opts, cfg)
        except PipelineError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            return err.exit_code
        except KeyboardInterrupt:
            print("error: interrupted; nothing half-written was left", file=sys.stderr)
            return Interrupted.exit_code
    return 0


def make_task(root: Path) -> Task:
    """The `release` task for the project at `root`."""

    @task(help=HELP)
    def release(
        c: Context,
        tag: str = "",
        dry_run: bool = False,
        target: str = "",
        allow_dirty: bool = False,
        publish: bool = True,
        snapshot: bool = False,
    ) -> None:
        """Build, package and publish a release: invoke release --tag vX.Y.Z [--dry-run]."""
        code = main(
            root,
            tag,
            dry_run=dry_run,
            target=target,
            allow_dirty=allow_dirty,
            publish=publish,
            snapshot=snapshot,
        )
        if code:
            raise Exit(code=code)

    return release
