"""deploy.compose.Stack against an in-memory host: the files of a release, the secrets
made once, the deploy lock, the compose command line."""

from __future__ import annotations

import posixpath

import pytest

from ci.runner import CommandResult
from deploy import compose
from deploy.errors import HostError


class MemoryHost:
    """A Host keeping files in a dict and recording commands."""

    name = "memory"

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, int]] = {}
        self.dirs: set[str] = set()
        self.commands: list[list[str]] = []
        self.writes: list[str] = []

    def run(self, argv, *, timeout=None, check=True, echo=True) -> CommandResult:
        self.commands.append(list(argv))
        if argv[:2] == ["rm", "-rf"]:
            self.dirs.discard(argv[2])
            for name in [f for f in self.files if f.startswith(argv[2] + "/")]:
                del self.files[name]
        return CommandResult(tuple(argv), 0, "", "", 0.0)

    def read(self, path: str) -> str | None:
        return self.files[path][0] if path in self.files else None

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        self.files[path] = (text, mode)
        self.writes.append(posixpath.basename(path))

    def make_dir(self, path: str) -> bool:
        if path in self.dirs:
            return False
        self.dirs.add(path)
        return True

    def close(self) -> None:
        pass


def stack(host: MemoryHost) -> compose.Stack:
    return compose.Stack(host, ["docker-compose"], "/srv/staging", "proj")


def test_secrets_are_made_once_private_and_never_rewritten() -> None:
    host = MemoryHost()
    first = stack(host).ensure_secrets()
    assert host.files["/srv/staging/secrets.env"] == (first, 0o600)
    assert stack(host).ensure_secrets() == first
    assert host.writes == ["secrets.env"]


def test_release_files_are_written_release_env_last_and_read_back() -> None:
    host = MemoryHost()
    files = compose.ReleaseFiles("services: {}\n", "APP_IMAGE=x@sha256:1\n", "")
    assert stack(host).read_files() is None
    stack(host).write_files(files)
    stack(host).write_files(files, compose.GOOD)
    assert host.writes[:3] == ["compose.yaml", "app.env", "release.env"]
    assert "/srv/staging/good/release.env" in host.files
    assert stack(host).read_files(compose.GOOD) == files


def test_compose_runs_with_project_directory_file_and_env_file() -> None:
    host = MemoryHost()
    stack(host).compose("up", "-d")
    assert host.commands[-1] == [
        "docker-compose", "-p", "proj", "--project-directory", "/srv/staging",
        "-f", "/srv/staging/compose.yaml", "--env-file", "/srv/staging/release.env", "up", "-d",
    ]  # fmt: skip


def test_the_deploy_lock_admits_one_deployment_and_says_who_holds_it() -> None:
    host = MemoryHost()
    with stack(host).locked("ci@runner pid 1 since 10:00, 1.0.0"):
        with pytest.raises(HostError) as err, stack(host).locked("someone else"):
            pass
        assert "another deployment holds memory:/srv/staging/.deploy.lock" in str(err.value)
        assert "(ci@runner pid 1 since 10:00, 1.0.0)" in str(err.value)
    with stack(host).locked("next"):  # released, also when the block fails
        pass
    with pytest.raises(RuntimeError), stack(host).locked("failing"):
        raise RuntimeError("boom")
    assert "/srv/staging/.deploy.lock" not in host.dirs
