"""Pipeline stages as nox sessions, generated from the stage registry (ci/registry.py).

One session per stage, named after it, documented by its one-line description. A stage
that only drives cargo and other binaries runs in nox's own process with no virtualenv.
A stage that needs Python tools (detect-secrets for `security`, the docker SDK for
`integration`) gets its own virtualenv with exactly its pinned requirements, reused
across runs (uv when installed, else virtualenv), and runs there as
`python -m ci.stage <name>`. The logic lives in ci/; this file only wires it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from ci.registry import STAGES, StageSpec  # noqa: E402 - stdlib only: `nox -l` stays fast

nox.options.default_venv_backend = "none"
nox.options.sessions = [spec.name for spec in STAGES if spec.in_ci]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

STAMP = ".cipipe-requirements"  # what the venv was provisioned with
TEARDOWN_S = 120.0  # how long nox lets a cancelled stage tear down before killing it


def _in_process(session: nox.Session, spec: StageSpec) -> None:
    from ci.stage import execute

    code, line = execute(spec.name, ROOT, session.posargs)
    if code:
        session.error(line)
    session.log(line)


def _provision(session: nox.Session, requirements: tuple[str, ...]) -> None:
    """Install the pinned requirements, unless the reused venv already has exactly them."""
    location = Path(str(getattr(session.virtualenv, "location", "") or ""))
    wanted = "\n".join([sys.version.split()[0], *sorted(requirements)]) + "\n"
    stamp = location / STAMP
    if location.is_dir() and stamp.is_file() and stamp.read_text() == wanted:
        return
    session.install(*requirements)
    if location.is_dir():
        stamp.write_text(wanted)


def _in_venv(session: nox.Session, spec: StageSpec) -> None:
    _provision(session, spec.python)
    fd, verdict_path = tempfile.mkstemp(prefix=f"cipipe-{spec.name}-", suffix=".json")
    os.close(fd)
    verdict = Path(verdict_path)
    env = {"PYTHONPATH": str(ROOT), "CIPIPE__ROOT": str(ROOT), "CIPIPE__VERDICT": verdict_path}
    try:
        ran = session.run(
            "python",
            "-m",
            "ci.stage",
            spec.name,
            *session.posargs,
            env=env,
            success_codes=range(256),
            interrupt_timeout=TEARDOWN_S,
            log=False,
        )
        if ran is None:  # --install-only: the venv is provisioned, the stage not run
            return
        text = verdict.read_text(encoding="utf-8")
        outcome = json.loads(text) if text else None
    finally:
        verdict.unlink(missing_ok=True)
    if outcome is None:
        session.error(f"{spec.name}: the stage process ended without a verdict")
    if outcome["code"]:
        session.error(outcome["verdict"])
    session.log(outcome["verdict"])


def _define(spec: StageSpec) -> None:
    def stage(session: nox.Session) -> None:
        if spec.python and session.venv_backend != "none":
            _in_venv(session, spec)
        else:
            _in_process(session, spec)

    stage.__doc__ = spec.description
    stage.__name__ = spec.name
    nox.session(
        name=spec.name,
        venv_backend="uv|virtualenv" if spec.python else "none",
        reuse_venv=True if spec.python else None,
        default=spec.in_ci,
    )(stage)


for _spec in STAGES:
    _define(_spec)

# The documentation site's generator and theme, pinned (the dev extras carry the same pins:
# the test suite builds the site too).
DOCS_REQUIREMENTS = ("mkdocs==1.6.1", "mkdocs-material==9.8.1")


@nox.session(venv_backend="uv|virtualenv", reuse_venv=True, default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ (MkDocs, strict: a broken link fails)."""
    _provision(session, DOCS_REQUIREMENTS)
    session.run("python", str(ROOT / "scripts" / "config_reference.py"), "--check")
    session.run(
        "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), *session.posargs
    )


# For the life of the nox process, the first SIGINT/SIGTERM interrupts (nox then waits for
# a stage in its virtualenv to tear down) and later ones are ignored: GitHub sends SIGTERM
# after SIGINT, and that must not kill nox while the stage is still tearing down. A stage
# run in this process installs the same policy for itself (ci.stage.execute).
if __name__ == "user_nox_module":  # loaded by nox itself (not by a test importing it)
    import atexit
    import signal

    from ci.interrupts import Interrupts

    Interrupts().__enter__()
    # Python resets handlers while it shuts down; a signal arriving then (GitHub's SIGTERM
    # just after we finished tearing down) would turn exit 130 into a kill.
    atexit.register(
        lambda: [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)]
    )
