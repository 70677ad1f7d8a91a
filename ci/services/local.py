"""Local backend: Postgres and Redis server binaries found on the machine, each on a
free port with a private data dir under a temp folder, in its own session so a
terminal Ctrl-C reaches the pipeline (which tears down) and not the servers."""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from ci.errors import ServiceError
from ci.runner import INSTALL_HINTS, which
from ci.services.base import (
    ENV_VARS,
    RunningService,
    ServiceSpec,
    free_port,
    make_url,
    pid_alive,
    port_in_use,
    postgres_unix_query,
    wait_ready,
)

WORKDIR_PREFIX = "pipeline-"
OWNER_FILE = "owner.pid"  # the pipeline process that started the server
SERVER_FILE = "server.pid"  # the server's pid (its own session leader)
PORT_TAKEN_MARKERS = ("Address already in use", "could not create any TCP/IP sockets")
# Attempts when a free port is grabbed by someone else between probe and bind.
PORT_RETRIES = 4


def _pg_bin_dirs(version: str) -> list[Path]:
    dirs = [Path(f"/usr/lib/postgresql/{version}/bin")] if version else []
    dirs += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    return dirs


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Postgres refuses to run as root: pick a system account to run it as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServiceError("running as root and no 'postgres' or 'nobody' account to run postgres as")


class LocalBackend:
    """Runs services as local processes. Postgres starts from a copy of a data directory
    made by `initdb` once per server version and user (`template_root`; None: initdb
    every run), and gets a fresh password every run."""

    name = "local"

    def __init__(self, template_root: Path | None = None) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._dirs: list[Path] = []
        self.template_root = template_root

    def _binary(self, tool: str, version: str = "") -> str | None:
        if tool in ("initdb", "postgres"):
            # Versioned server dirs first: a PATH shim may be a wrapper for another version.
            for folder in _pg_bin_dirs(version):
                if (folder / tool).is_file():
                    return str(folder / tool)
        return which(tool)

    def available(self, specs: list[ServiceSpec]) -> str | None:
        """None when every needed server binary exists."""
        missing = []
        for spec in specs:
            tools = ["initdb", "postgres"] if spec.name == "postgres" else ["redis-server"]
            for tool in tools:
                if not self._binary(tool, spec.version):
                    missing.append(f"{tool} ({INSTALL_HINTS[tool]})")
        return "missing " + ", ".join(missing) if missing else None

    def start(self, spec: ServiceSpec) -> RunningService:
        """Start `spec` on a free (or the configured) port and wait until it is ready."""
        started = time.monotonic()
        reap_orphans()
        workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{spec.name}-"))
        self._dirs.append(workdir)
        (workdir / OWNER_FILE).write_text(str(os.getpid()))
        user = _unprivileged_user() if spec.name == "postgres" else None
        if user is not None:
            os.chown(workdir, user.pw_uid, user.pw_gid)
        password: str | None = None
        if spec.name == "postgres":
            password = secrets.token_urlsafe(18)  # per run, like the docker backend
            self._data_dir(spec, workdir, user)
        for attempt in range(PORT_RETRIES):
            port = spec.port or free_port()
            if spec.port and port_in_use(port):
                raise ServiceError(
                    f"{spec.name}: port {port} is already in use; free it or set "
                    f"[tool.pipeline.services.{spec.name}] port = 0 for a free port"
                )
            proc, log = self._spawn(spec, workdir, port, user)
            try:
                wait_ready(
                    spec,
                    "127.0.0.1",
                    port,
                    alive=functools.partial(_dead, proc, log),
                    timeout=spec.startup_timeout,
                )
            except ServiceError as err:
                if spec.port == 0 and attempt + 1 < PORT_RETRIES and _port_taken(log):
                    self._terminate(proc)
                    continue  # another run grabbed the port first
                if _port_taken(log):
                    raise ServiceError(f"{spec.name}: port {port} is already in use") from None
                raise err from None
            if password is not None:  # set over the unix socket: never on a command line
                postgres_unix_query(
                    workdir,
                    port,
                    spec.user,
                    "postgres",
                    f"ALTER ROLE \"{spec.user}\" PASSWORD '{password}'",
                )
            return RunningService(
                name=spec.name,
                backend=self.name,
                host="127.0.0.1",
                port=port,
                url=make_url(spec, "127.0.0.1", port, password),
                env_var=ENV_VARS[spec.name],
                ready_s=time.monotonic() - started,
                secrets=[password] if password else [],
                where=str(workdir),
            )
        raise ServiceError(f"{spec.name}: no free port after {PORT_RETRIES} attempts")

    def _data_dir(self, spec: ServiceSpec, workdir: Path, user: pwd.struct_passwd | None) -> None:
        """`workdir/data`: a copy of the template (made on first use), or a fresh initdb."""
        if self.template_root is None:
            self._initdb(spec, workdir / "data", user)
            return
        template = self._template(spec, user)
        # cp -a keeps the owner (the server refuses a data dir it does not own) and modes
        res = subprocess.run(
            ["cp", "-a", "--reflink=auto", str(template), str(workdir / "data")],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            raise ServiceError(f"postgres: cannot copy the template {template}: {res.stderr}")

    def _template(self, spec: ServiceSpec, user: pwd.struct_passwd | None) -> Path:
        """The initdb result for this server version and user, made once and kept."""
        initdb = self._binary("initdb", spec.version)
        assert initdb is not None and self.template_root is not None
        stamp = os.stat(initdb)
        ident = f"{initdb}:{stamp.st_size}:{stamp.st_mtime_ns}:{spec.user}"
        digest = hashlib.sha256(ident.encode()).hexdigest()[:12]
        final = self.template_root / f"postgres-{spec.version or 'any'}-{digest}"
        if (final / "PG_VERSION").is_file():
            return final
        self.template_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".template-", dir=self.template_root))
        try:
            if user is not None:
                os.chown(staging, user.pw_uid, user.pw_gid)
            self._initdb(spec, staging / "data", user)
            try:
                os.rename(staging / "data", final)
            except OSError:
                if not (final / "PG_VERSION").is_file():  # not a concurrent run's template
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def _initdb(self, spec: ServiceSpec, data: Path, user: pwd.struct_passwd | None) -> None:
        initdb = self._binary("initdb", spec.version)
        assert initdb is not None
        # Password auth over TCP, as in production and the postgres image. initdb gets a
        # throwaway password (from a file, never argv); each run sets its own.
        pwfile = data.parent / f"pwfile-{os.getpid()}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(18))
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        cmd = [initdb, "-D", str(data), "-U", spec.user, "--pwfile", str(pwfile)]
        cmd += ["--auth-host=scram-sha-256", "--auth-local=trust"]
        cmd += ["-E", "UTF8", "--no-sync", "--no-instructions"]
        res = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            check=False,
            start_new_session=True,
        )
        pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            reason = (res.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise ServiceError(f"postgres: initdb failed: {reason}")

    def _spawn(
        self, spec: ServiceSpec, workdir: Path, port: int, user: pwd.struct_passwd | None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = workdir / f"{spec.name}-{port}.log"
        if spec.name == "postgres":
            exe = self._binary("postgres", spec.version)
            cmd = [str(exe), "-D", str(workdir / "data"), "-p", str(port), "-k", str(workdir)]
            cmd += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
            cmd += ["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        else:
            exe = self._binary("redis-server")
            cmd = [str(exe), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
            cmd += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
            )
        self._procs.append((spec.name, proc))
        (workdir / SERVER_FILE).write_text(str(proc.pid))
        return proc, log

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            # SIGINT is postgres' "fast shutdown"; redis saves nothing (save "").
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def stop_all(self) -> None:
        """Stop every server started here and delete their data dirs."""
        while self._procs:
            _, proc = self._procs.pop()
            with contextlib.suppress(Exception):
                self._terminate(proc)
        while self._dirs:
            shutil.rmtree(self._dirs.pop(), ignore_errors=True)


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _dead(proc: subprocess.Popen[bytes], log: Path) -> str | None:
    if proc.poll() is None:
        return None
    return f"exit code {proc.returncode}: {_tail(log) or 'no output'}"


def _port_taken(log: Path) -> bool:
    text = _tail(log, 20)
    return any(marker in text for marker in PORT_TAKEN_MARKERS)


def reap_orphans(tmp: Path | None = None) -> list[Path]:
    """Stop servers whose pipeline process died without tearing down (SIGKILL, OOM,
    power loss) and delete their data dirs. Runs before every start, so an orphan
    lives at most until the next integration run on the machine."""
    reaped = []
    for workdir in Path(tmp or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*-*"):
        try:
            owner = int((workdir / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being created
        if pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            server = int((workdir / SERVER_FILE).read_text())
            # Both servers chdir into their data dir: a reused pid elsewhere is left alone.
            if os.readlink(f"/proc/{server}/cwd").startswith(str(workdir)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(server, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
        reaped.append(workdir)
    return reaped
