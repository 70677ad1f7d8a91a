"""Options and fixtures of the end-to-end suite.

--service-url URL     the service under test (required)
--expect-version V    /health must report this version
--restart-cmd CMD     a command that restarts the service (split like a shell would, run
                      without one); without it the restart test is skipped, saying why
--request-timeout S, --restart-timeout S
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from client import Api

RUN = uuid.uuid4().hex[:8].upper()  # every run trades its own symbols and accounts
_symbols = count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("service", "the service under test")
    group.addoption("--service-url", default="", help="base URL of the service")
    group.addoption("--expect-version", default="", help="version /health must report")
    group.addoption("--restart-cmd", default="", help="command that restarts the service")
    group.addoption("--request-timeout", type=float, default=10.0)
    group.addoption("--restart-timeout", type=float, default=90.0)


@pytest.fixture(scope="session")
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    url = request.config.getoption("--service-url")
    if not url:
        pytest.exit("the suite needs --service-url URL (nox -s e2e -- --url URL)", returncode=4)
    client = Api(url, request.config.getoption("--request-timeout"))
    yield client
    client.session.close()


@pytest.fixture
def symbol() -> str:
    """A symbol no other test or run has traded."""
    return f"E2E{RUN}-{next(_symbols)}"


@pytest.fixture
def accounts() -> dict[str, str]:
    """Accounts of this run: alice, bob, carol, dave."""
    return {name: f"{name}-{RUN.lower()}" for name in ("alice", "bob", "carol", "dave")}


@pytest.fixture(scope="session")
def expected_version(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--expect-version"))


@pytest.fixture
def restart(request: pytest.FixtureRequest, api: Api):
    """A function that restarts the service and waits until it is healthy again."""
    command = request.config.getoption("--restart-cmd")
    if not command:
        pytest.skip("the target gives no way to restart the service (pass --restart-cmd)")
    timeout = request.config.getoption("--restart-timeout")

    def run() -> float:
        proc = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=timeout, check=False
        )
        assert proc.returncode == 0, (
            f"restart command failed: {(proc.stderr or proc.stdout)[-300:]}"
        )
        return api.wait_healthy(timeout)

    return run
