"""e2e: the service's end-to-end suite (pytest, `[e2e] suite`) against any base URL.

    nox -s e2e -- --url http://127.0.0.1:8080             the whole suite
    nox -s e2e -- --url URL --smoke                       the smoke subset (seconds)
    nox -s e2e -- --url URL --restart-cmd "docker restart svc"   also restart survival
    nox -s e2e -- --url URL -- -k positions               further arguments go to pytest

JUnit in `<out>/e2e/junit.xml` (`junit-smoke.xml` for the smoke subset); one finding per
failed test. A URL where nothing answers is an error naming it, not a page of failures.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

from ci.cargo import count, test_findings
from ci.contract import Clock, StageContext
from ci.errors import ConfigError
from ci.parsers import TestCase, parse_junit
from ci.redact import mask_xml
from ci.result import Finding, StageResult, Status, atomic_write


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"nox -s e2e: {message} (usage: nox -s e2e -- --url URL [--smoke])")


def parse_args(posargs: list[str], default_url: str) -> argparse.Namespace:
    """The stage's options; anything after a second `--` goes to pytest."""
    parser = _Parser(prog="nox -s e2e --", add_help=False)
    parser.add_argument("--url", default=default_url)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--restart-cmd", default="")
    parser.add_argument("--expect-version", default="")
    args, rest = posargs, []
    if "--" in posargs:
        cut = posargs.index("--")
        args, rest = posargs[:cut], posargs[cut + 1 :]
    parsed = parser.parse_args(args)
    parsed.pytest_args = rest
    url = str(parsed.url).strip().rstrip("/")
    if not url:
        raise ConfigError(
            "nox -s e2e needs the service's base URL: nox -s e2e -- --url http://host:port "
            "(or set [tool.pipeline.e2e] url)"
        )
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"nox -s e2e: --url {url!r} is not an http(s) URL")
    parsed.url = url
    return parsed


def answers(url: str, timeout: float) -> str | None:
    """None when something answers HTTP at `url`/health (any status), else why not."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered (503 is the suite's business)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return str(getattr(reason, "strerror", None) or reason)


def one_line(finding: Finding) -> Finding:
    """A finding whose message is one line: pytest's assertion messages span several
    (the message, then the compared expression); they are joined with " | "."""
    lines = [line.strip() for line in finding.message.splitlines() if line.strip()]
    return replace(finding, message=" | ".join(lines))


def pytest_command(
    args: argparse.Namespace, suite: Path, timeout: float, restart_timeout: float, junit: Path
) -> list[str]:
    """The pytest command line of the suite (run in the stage's own interpreter)."""
    kind = "smoke" if args.smoke else "e2e"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(suite / "pytest.ini"),
        "--rootdir",
        str(suite),
        str(suite),
        f"--service-url={args.url}",
        f"--request-timeout={timeout:g}",
        f"--restart-timeout={restart_timeout:g}",
        f"--junitxml={junit}",
        "-o",
        f"junit_suite_name={kind}",
    ]
    if args.smoke:
        cmd += ["-m", "smoke"]
    if args.restart_cmd:
        cmd.append(f"--restart-cmd={args.restart_cmd}")
    if args.expect_version:
        cmd.append(f"--expect-version={args.expect_version}")
    return [*cmd, *args.pytest_args]


def run(ctx: StageContext) -> StageResult:
    """Run the suite (or its smoke subset) against `--url`; any failed test fails it."""
    cfg = ctx.settings.section("e2e")
    args = parse_args(ctx.posargs, cfg.text("url"))
    suite = cfg.path("suite")
    if suite is None or not (suite / "conftest.py").is_file():
        raise ConfigError(f"[tool.pipeline] e2e.suite: no test suite (conftest.py) at {suite}")
    timeout = cfg.number("request_timeout", minimum=0.1)
    kind = "smoke" if args.smoke else "e2e"
    clock = Clock()
    junit = ctx.artifacts_dir / ("junit-smoke.xml" if args.smoke else "junit.xml")
    junit.unlink(missing_ok=True)
    artifacts: dict[str, str] = {}
    cases: list[TestCase] = []
    with ctx.runner.group(f"{kind} suite against {args.url}"), clock.check(kind) as chk:
        down = answers(args.url, timeout)
        if down is not None:
            chk.status = Status.ERROR
            chk.summary = f"nothing answers at {args.url} ({down})"
            clock.findings.append(Finding(kind, chk.summary, rule="unreachable"))
        else:
            raw = junit.with_suffix(".raw.xml")
            restart = cfg.number("restart_timeout", minimum=1)
            res = ctx.runner.run(pytest_command(args, suite, timeout, restart, raw), cwd=suite)
            if raw.is_file():
                text = raw.read_text(encoding="utf-8")
                cases = parse_junit(text)
                atomic_write(junit, mask_xml(text, ctx.runner.redact))
                raw.unlink()
                artifacts["junit"] = str(junit)
            clock.findings += [one_line(f) for f in test_findings(kind, cases)]
            chk.summary = f"{count(cases)} against {args.url}"
            if res.returncode == 5 or not cases:
                chk.status = Status.ERROR
                chk.summary = f"no test ran (pytest exit {res.returncode}) against {args.url}"
            elif res.returncode != 0:
                chk.status = Status.FAILED
                if not any(c.status == "failed" for c in cases):
                    clock.findings.append(Finding(kind, f"pytest exited {res.returncode}"))
    result = clock.result(ctx.name, artifacts)
    result.outputs = {"url": args.url, "suite": kind, "tests": count(cases)}
    return result
