"""A control socket through which the e2e suite asks the running deploy to restart the
service (the suite's restart-survival test). The deploy already holds the SSH
connection: the suite's child process gets a socket path, never a credential.

The socket lives in a private temp folder (mode 0700) and answers one command per
connection: `restart` -> `ok` or `error: <one line>`. Client: deploy/restart.py."""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

RESTART_SCRIPT = Path(__file__).with_name("restart.py")


@contextmanager
def control_socket(restart: Callable[[], None]) -> Iterator[Path]:
    """Serve `restart` on a unix socket for the block; yields its path."""
    folder = Path(tempfile.mkdtemp(prefix="deploy-control-"))
    folder.chmod(0o700)
    path = folder / "control.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(2)
    server.settimeout(0.2)
    stop = threading.Event()
    lock = threading.Lock()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(300)
                command = conn.recv(64).decode(errors="replace").strip()
                if command != "restart":
                    conn.sendall(b"error: unknown command\n")
                    continue
                try:
                    with lock:
                        restart()
                    conn.sendall(b"ok\n")
                except Exception as err:  # the suite shows it as its failure
                    conn.sendall(f"error: {str(err).splitlines()[0][:300]}\n".encode())

    thread = threading.Thread(target=serve, name="deploy-control", daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(timeout=5)
        with contextlib.suppress(OSError):
            server.close()
        shutil.rmtree(folder, ignore_errors=True)


def restart_command(path: Path) -> list[str]:
    """The command the suite runs to restart the service through `path`."""
    return [sys.executable, str(RESTART_SCRIPT), str(path)]
