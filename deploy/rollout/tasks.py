"""The entry points: `invoke deploy.production`, `deploy.approve`, `deploy.approvals`,
`deploy.proxy` and `invoke rollback`. Each prints masked output, turns expected failures
into one `error:` line and a distinct exit code, and (production, rollback) writes
`<output_dir>/production.json`."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ci.errors import PipelineError


def entry(
    root: Path,
    name: str,
    body: Callable[[Any, Any], str],
    env: Mapping[str, str] | None = None,
    *,
    result: bool = True,
) -> int:
    """Run `body(settings, runner) -> final line` with masking, signal handling, the
    result file and the exit code."""
    from ci import settings as settings_mod
    from ci.console import AddMask, masked_stdio
    from ci.contract import EXIT_INTERNAL, Clock
    from ci.errors import Interrupted
    from ci.interrupts import Interrupts
    from ci.redact import Redactor, secrets_from_env
    from ci.result import Status, write_result
    from ci.runner import Runner

    env = dict(os.environ if env is None else env)
    redactor = Redactor(secrets_from_env(env))
    start = time.monotonic()
    code, line, out_dir, runner = 0, "", None, None
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(masked_stdio(redactor))
        redactor.on_add(AddMask(env, out))
        stack.enter_context(Interrupts())
        try:
            settings = settings_mod.load(root, env)
            redactor.add(secrets_from_env(env, settings.secret_env))
            out_dir = settings.out_dir
            runner = stack.enter_context(
                Runner(
                    redactor,
                    log_path=out_dir / f"{name}.log" if result else None,
                    github=env.get("GITHUB_ACTIONS") == "true",
                    base_env=env,
                    pass_env=settings.top.strings("pass_env"),
                    secret_names=settings.secret_env,
                )
            )
            line = body(settings, runner)
        except PipelineError as err:
            code, line = err.exit_code, f"error: {err}"
        except KeyboardInterrupt:
            code, line = Interrupted.exit_code, "error: interrupted; traffic is on the old colour"
        except Exception as exc:
            code = EXIT_INTERNAL
            line = f"error: internal error: {type(exc).__name__}: {exc}"
            if runner is not None:
                runner.log_only(traceback.format_exc())
        seconds = time.monotonic() - start
        if result and out_dir is not None:
            res = Clock().result(name)
            res.status = (
                Status.PASSED
                if code == 0
                else (
                    Status.CANCELLED
                    if code == 130
                    else Status.FAILED
                    if code == 24
                    else Status.ERROR
                )
            )
            res.duration_s, res.summary = round(seconds, 3), line.removeprefix("error: ")
            with contextlib.suppress(OSError):
                write_result(out_dir, res, redactor)
        print(f"{line} ({seconds:.1f}s)", file=sys.stderr if code else sys.stdout, flush=True)
    return code


def parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    """`--env KEY=VALUE` options (a drill's extra environment for the new colour)."""
    from deploy.errors import PreconditionFailed

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise PreconditionFailed(f"--env {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


def need_version(version: str) -> str:
    """The --version given, or one line saying it is needed."""
    from deploy.errors import PreconditionFailed

    if not version.strip():
        raise PreconditionFailed("name the version: --version V (its image tag in the registry)")
    return version.strip()


def production(
    root: Path, version: str, env_pairs: list[str], env: Mapping[str, str] | None = None
) -> int:
    """`invoke deploy.production --version V`."""
    from deploy.rollout import run

    def body(settings: Any, runner: Any) -> str:
        return run.deploy(settings, runner, need_version(version), parse_env_pairs(env_pairs))

    return entry(root, "production", body, env)


def rollback(root: Path, to: str, env: Mapping[str, str] | None = None) -> int:
    """`invoke rollback [--to V]`."""
    from deploy.rollout import run

    return entry(root, "production", lambda s, r: run.rollback(s, r, to), env)


def approve(root: Path, version: str, env: Mapping[str, str] | None = None) -> int:
    """`invoke deploy.approve --version V`."""
    from deploy.rollout import run

    return entry(
        root, "approve", lambda s, r: run.approve(s, r, need_version(version)), env, result=False
    )


def approval_status(root: Path, version: str, env: Mapping[str, str] | None = None) -> int:
    """`invoke deploy.approvals --version V`."""
    from deploy.rollout import run

    return entry(
        root,
        "approvals",
        lambda s, r: run.approval_status(s, r, need_version(version)),
        env,
        result=False,
    )


def proxy(root: Path, action: str, env: Mapping[str, str] | None = None) -> int:
    """`invoke deploy.proxy --start|--stop` or its state."""
    from deploy.rollout import run

    return entry(root, "proxy", lambda s, r: run.proxy(s, r, action), env, result=False)
