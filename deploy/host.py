"""Deployment hosts. `Host` is what the flows do on one: run a command (an argument
list, quoted for the remote shell, never a format-built string), read and write files
(atomically, with a mode; secrets travel over SFTP, never on a command line).
`SshHost` is Fabric over SSH; `localhost` works like any other host.

Host keys are checked: the key must be in `known_hosts` (an unknown or changed key is
refused, never added on the fly, unlike Fabric's default). Every way a connection can
fail is one line saying what to do.
"""

from __future__ import annotations

import io
import posixpath
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ci.runner import CommandResult, Runner
from deploy.config import SshTarget
from deploy.errors import HostError


class Host(Protocol):
    """A machine the flows deploy to."""

    name: str

    def run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        echo: bool = True,
    ) -> CommandResult:
        """Run `argv` there; `check`: a non-zero exit is HostError with its last line;
        `echo=False`: the command goes to the log only (frequent probes)."""
        ...

    def read(self, path: str) -> str | None:
        """The text of a file there, or None when it does not exist."""
        ...

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file there atomically (temp file + rename) with `mode`."""
        ...

    def make_dir(self, path: str) -> bool:
        """Create the directory `path` (its parents as needed); False when it existed
        already: an atomic test-and-set, used as a lock."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


@dataclass(frozen=True)
class _Key:
    pkey: Any | None
    filename: str | None


def _load_key(target: SshTarget) -> _Key:
    """The configured private key (any type paramiko reads), or none (ssh's defaults)."""
    import paramiko

    if target.key is None:
        return _Key(None, None)
    passphrase = target.key_passphrase.value if target.key_passphrase else None
    text = target.key.value
    if not text.lstrip().startswith("-----BEGIN"):
        raise HostError(
            f"the SSH key from {target.key.source} is not a private key in PEM/OpenSSH format"
        )
    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return _Key(kind.from_private_key(io.StringIO(text), password=passphrase), None)
        except paramiko.PasswordRequiredException:
            raise HostError(
                f"the SSH key from {target.key.source} is encrypted: set "
                "its passphrase in $<ENV>_SSH_KEY_PASSPHRASE"
            ) from None
        except (paramiko.SSHException, ValueError) as err:
            errors.append(type(err).__name__)
    raise HostError(f"cannot load the SSH key from {target.key.source} (wrong passphrase?)")


def connect_error(err: BaseException, target: SshTarget) -> HostError:
    """The one line for an exception raised while connecting."""
    import paramiko

    where = target.where
    known = target.known_hosts
    if isinstance(err, socket.gaierror):
        return HostError(
            f"unknown host {target.host!r}: the name does not resolve; fix "
            "[tool.pipeline] <env>.host (CIPIPE_<ENV>__HOST)"
        )
    if isinstance(err, paramiko.BadHostKeyException):
        return HostError(
            f"the host key of {target.host}:{target.port} CHANGED (not the one in {known}): "
            "refusing to connect; if the host was rebuilt, verify and replace its line"
        )
    if isinstance(err, paramiko.AuthenticationException):
        key = target.key.source if target.key else "ssh-agent / ~/.ssh/id_*"
        return HostError(
            f"ssh authentication failed for {where} with the key from {key}: add its public "
            f"key to {target.user}'s authorized_keys on {target.host}"
        )
    if isinstance(err, paramiko.SSHException) and "known_hosts" in str(err):
        scan = f"ssh-keyscan -p {target.port} {target.host} >> {known}"
        return HostError(
            f"the host key of {target.host}:{target.port} is not in {known}: verify the "
            f"host's fingerprint, then add it ({scan})"
        )
    if isinstance(err, (TimeoutError, socket.timeout)):
        return HostError(
            f"cannot reach {target.host}:{target.port}: no answer within "
            f"{target.connect_timeout:g}s"
        )
    if isinstance(err, (paramiko.ssh_exception.NoValidConnectionsError, ConnectionError, OSError)):
        reason = getattr(err, "strerror", None) or "connection refused"
        return HostError(f"cannot reach {target.host}:{target.port}: {reason}; is sshd running?")
    return HostError(f"ssh to {where} failed: {type(err).__name__}: {str(err)[:160]}")


def brief(argv: list[str]) -> str:
    """A long command shortened for a one-line message: the program and its last words."""
    if len(argv) <= 5:
        return shlex.join(argv)
    return f"{argv[0]} … {shlex.join(argv[-3:])}"


class SshHost:
    """A host over SSH (Fabric), opened at construction."""

    def __init__(self, target: SshTarget, runner: Runner) -> None:
        import paramiko
        from fabric import Config, Connection

        self.target = target
        self.runner = runner
        self.name = target.host
        key = _load_key(target)
        kwargs: dict[str, Any] = {
            "look_for_keys": key.pkey is None,
            "allow_agent": key.pkey is None,
            "banner_timeout": target.connect_timeout,
            "auth_timeout": target.connect_timeout,
        }
        if key.pkey is not None:
            kwargs["pkey"] = key.pkey
        config = Config(overrides={"load_ssh_configs": False})
        self.conn = Connection(
            target.host,
            user=target.user,
            port=target.port,
            config=config,
            connect_timeout=int(target.connect_timeout),
            connect_kwargs=kwargs,
        )
        client = self.conn.client
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if target.known_hosts.is_file():
            try:
                client.get_host_keys().load(str(target.known_hosts))
            except (OSError, paramiko.SSHException) as err:
                raise HostError(f"cannot read {target.known_hosts}: {err}") from None
        try:
            self.conn.open()
        except Exception as err:
            self.conn.close()
            raise connect_error(err, target) from None
        self._sftp: Any = None

    def _label(self) -> str:
        return f"{self.target.user}@{self.target.host}"

    def run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        echo: bool = True,
    ) -> CommandResult:
        """Run `argv` on the host (quoted with shlex.join for its shell); output is
        returned raw and logged masked."""
        command = shlex.join(argv)
        (self.runner.say if echo else self.runner.log_only)(f"+ [{self._label()}] {command}")
        start = time.monotonic()
        try:
            res = self.conn.run(
                command,
                hide=True,
                warn=True,
                in_stream=False,
                timeout=timeout or self.target.command_timeout,
            )
            code, out, err = int(res.exited), str(res.stdout), str(res.stderr)
        except Exception as exc:
            if type(exc).__name__ == "CommandTimedOut":
                raise HostError(
                    f"`{brief(argv)}` on {self.name} did not finish within "
                    f"{timeout or self.target.command_timeout:g}s"
                ) from None
            raise HostError(f"lost the connection to {self.name}: {type(exc).__name__}") from None
        for line in (out + err).splitlines():
            self.runner.log_only(f"  {line}")
        result = CommandResult(tuple(argv), code, out, err, time.monotonic() - start)
        self.runner.log_only(f"  (exit {code} in {result.duration_s:.2f}s)")
        if check and code != 0:
            last = (err.strip() or out.strip() or f"exit code {code}").splitlines()[-1]
            raise HostError(f"`{brief(argv)}` failed on {self.name} (exit {code}): {last.strip()}")
        return result

    def _client(self) -> Any:
        if self._sftp is None:
            self._sftp = self.conn.sftp()
        return self._sftp

    def read(self, path: str) -> str | None:
        """A file's text over SFTP; None when missing."""
        try:
            with self._client().open(path, "r") as fh:
                data: bytes = fh.read()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise HostError(f"cannot read {path} on {self.name}: {err}") from None
        return data.decode("utf-8")

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write over SFTP to a temp file created with `mode`, then rename over `path`."""
        sftp = self._client()
        folder = posixpath.dirname(path) or "."
        tmp = posixpath.join(folder, f".{posixpath.basename(path)}.tmp")
        try:
            self.mkdir(folder)
            with sftp.open(tmp, "w") as fh:
                fh.chmod(mode)  # before the content: a secret is never world-readable
                fh.write(text.encode("utf-8"))
            sftp.posix_rename(tmp, path)
        except OSError as err:
            raise HostError(f"cannot write {path} on {self.name}: {err}") from None

    def mkdir(self, folder: str) -> None:
        """Create `folder` and its parents (like mkdir -p)."""
        sftp = self._client()
        parts = folder.split("/")
        for i in range(1, len(parts) + 1):
            part = "/".join(parts[:i])
            if not part or part == ".":
                continue
            try:
                sftp.stat(part)
            except FileNotFoundError:
                sftp.mkdir(part, 0o755)

    def make_dir(self, path: str) -> bool:
        """mkdir over SFTP: True when this call created it, False when it existed."""
        self.mkdir(posixpath.dirname(path) or ".")
        try:
            self._client().mkdir(path, 0o700)
        except OSError:
            try:
                self._client().stat(path)
            except OSError as err:
                raise HostError(f"cannot create {path} on {self.name}: {err}") from None
            return False
        return True

    def close(self) -> None:
        """Close SFTP and the connection."""
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        self.conn.close()


def open_host(target: SshTarget, runner: Runner) -> Host:
    """The host of `target`, connected (HostError with one line otherwise)."""
    runner.say(f"ssh {target.where} (known hosts: {Path(target.known_hosts)})")
    return SshHost(target, runner)
