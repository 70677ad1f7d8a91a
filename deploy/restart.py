"""Restart the service through a running deploy's control socket (deploy/control.py):
`python deploy/restart.py <socket>`; exit 0 when the deploy reports the restart done.
Standard library only: it runs under whichever Python the e2e suite has."""

from __future__ import annotations

import socket
import sys


def main(argv: list[str]) -> int:
    """Send `restart`, print the answer, 0 on `ok`."""
    if len(argv) != 1:
        print("usage: restart.py <control socket>", file=sys.stderr)
        return 2
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(300)
        try:
            conn.connect(argv[0])
            conn.sendall(b"restart\n")
            answer = conn.recv(1024).decode(errors="replace").strip()
        except OSError as err:
            print(f"error: cannot reach the deploy at {argv[0]}: {err}", file=sys.stderr)
            return 1
    print(answer)
    return 0 if answer == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
