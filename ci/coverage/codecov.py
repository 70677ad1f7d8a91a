"""Upload of the Cobertura report to Codecov through Codecov's official uploader,
`codecovcli upload-coverage` (PyPI `codecov-cli`, pinned in the coverage stage's own
virtualenv by ci/registry.py): when Codecov changes its protocol, a new pin follows it;
nothing here speaks the protocol itself.

- `--url` is `[tool.pipeline.coverage.codecov] url`: Codecov's ingest host, a
  self-hosted Codecov, or the local test server.
- `--disable-telem`: the CLI otherwise sends usage and error reports to Sentry.
- The token reaches the CLI only as `CODECOV_TOKEN` in its environment (the variable it
  reads for `-t`): never on its command line, so never in `ps`, the echoed command or a log.
- `--plugin noop --disable-search --file <report>`: exactly our report; the CLI neither
  searches the tree for other reports nor runs gcov or coverage.py.
- The CLI retries 5xx answers and dropped connections itself (3 tries); its failure is
  turned into one line that says what to do.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ci.coverage.config import CodecovConfig
from ci.errors import PipelineError
from ci.runner import Runner

CLI = "codecovcli"
_PR_REF = re.compile(r"^refs/pull/(\d+)/merge$")
_SLUG = re.compile(r"^[^/\s]+(/[^/\s]+)+$")
_WHERE = re.compile(r"results will be available at: (\S+)")
# The CLI's log lines: "error - 2026-12-07 14:59:18,742 -- <message>"
_ERROR = re.compile(r"^(?:error|critical) - [\d-]+ [\d:,]+ -- (.*)$")


class UploadError(PipelineError):
    """Codecov refused the upload, stayed unreachable, or the uploader is missing."""

    exit_code = 21


@dataclass(frozen=True)
class UploadMeta:
    """What Codecov files an upload under."""

    commit: str
    slug: str
    branch: str = ""
    pull_request: str = ""
    build: str = ""
    build_url: str = ""
    job: str = ""
    flags: tuple[str, ...] = ()
    name: str = ""


def metadata(cfg: CodecovConfig, env: Mapping[str, str], commit: str, branch: str) -> UploadMeta:
    """The upload's metadata from the configuration and the CI environment (GitHub
    Actions variables when present): slug, pull request number, run URL, job. Given to
    the CLI explicitly, so a local run and a CI run are filed the same way."""
    slug = cfg.slug or env.get("GITHUB_REPOSITORY", "").strip()
    match = _PR_REF.match(env.get("GITHUB_REF", "").strip())
    pr = match.group(1) if match and env.get("GITHUB_HEAD_REF") else ""
    run = env.get("GITHUB_RUN_ID", "").strip()
    server = env.get("GITHUB_SERVER_URL", "").strip()
    build_url = f"{server}/{slug}/actions/runs/{run}" if server and slug and run else ""
    return UploadMeta(
        commit=commit,
        slug=slug,
        branch=branch,
        pull_request=pr,
        build=run,
        build_url=build_url,
        job=env.get("GITHUB_JOB", "").strip(),
        flags=cfg.flags,
        name=cfg.name,
    )


def find_cli(python: str = sys.executable) -> str:
    """The `codecovcli` of this Python environment (the stage's virtualenv), else the
    one on PATH; UploadError saying how to get it when there is none."""
    beside = Path(python).parent / CLI
    if beside.is_file():
        return str(beside)
    found = shutil.which(CLI)
    if found:
        return found
    raise UploadError(
        "Codecov's uploader (codecovcli) is not installed here: run the stage as "
        "`nox -s coverage` (its virtualenv installs the pinned codecov-cli)"
    )


def command(cli: str, cfg: CodecovConfig, report: Path, meta: UploadMeta, root: Path) -> list[str]:
    """The CLI's argument list. No token: it is passed in the environment only."""
    if not _SLUG.match(meta.slug):
        raise UploadError(
            f"Codecov needs the repository as owner/name, got {meta.slug!r}: set "
            "[tool.pipeline.coverage.codecov] slug or GITHUB_REPOSITORY"
        )
    argv = [cli, "--disable-telem", "--url", cfg.url, "upload-coverage"]
    argv += ["--file", str(report), "--disable-search", "--plugin", "noop"]
    argv += ["--sha", meta.commit, "--slug", meta.slug, "--git-service", cfg.service]
    argv += ["--network-root-folder", str(root), "--fail-on-error"]
    optional = (
        ("--branch", meta.branch),
        ("--pr", meta.pull_request),
        ("--build", meta.build),
        ("--build-url", meta.build_url),
        ("--job-code", meta.job),
        ("--name", meta.name),
    )
    argv += [part for flag, value in optional if value for part in (flag, value)]
    for flag in meta.flags:
        argv += ["--flag", flag]
    return argv


def explain(output: str, code: int, slug: str, url: str) -> str:
    """One line for a failed upload, from what the CLI said, saying what to do."""
    errors = [m.group(1).strip() for line in output.splitlines() if (m := _ERROR.match(line))]
    said = errors[-1] if errors else ""
    if not said:  # a click usage error or an exception: its last line is the message
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        said = lines[-1] if lines else f"exit code {code}"
    said = said[:300]
    lowered = said.lower()
    if "too many retries" in lowered or "connection" in lowered:
        return (
            f"Codecov at {url} did not take the upload, even after the CLI's retries "
            f"(codecovcli: {said}); check the network, the url and Codecov's status"
        )
    if "token" in lowered or "credentials" in lowered:
        return f"Codecov rejected CODECOV_TOKEN (codecovcli: {said}): set a valid upload token"
    if "not found" in lowered and "repositor" in lowered:
        return (
            f"Codecov does not know {slug} (codecovcli: {said}): check "
            "[tool.pipeline.coverage.codecov] slug and service"
        )
    return f"Codecov upload failed (codecovcli exit {code}: {said})"


def upload(
    runner: Runner,
    cfg: CodecovConfig,
    token: str,
    report: Path,
    meta: UploadMeta,
    root: Path,
    *,
    cli: str | None = None,
) -> str:
    """Upload `report` through the official CLI (`cli`: found by `find_cli`); returns
    where Codecov will show it. UploadError (one line) when the CLI is missing, Codecov
    refuses, or it stays unreachable."""
    argv = command(cli or find_cli(), cfg, report, meta, root)
    res = runner.run(
        argv,
        cwd=root,
        env={"CODECOV_TOKEN": token},
        capture=True,
        merge_stderr=True,
        timeout=cfg.timeout,
    )
    if res.timed_out:
        raise UploadError(
            f"Codecov upload did not finish within {cfg.timeout:g}s (codecovcli stopped): "
            "check the network, or raise [tool.pipeline.coverage.codecov] timeout"
        )
    if not res.ok:
        raise UploadError(runner.redact(explain(res.stdout, res.returncode, meta.slug, cfg.url)))
    found = _WHERE.search(res.stdout)
    return found.group(1) if found else ""
