"""Run a command and write its peak resident set size to a file.

    python peak_rss.py OUT.json PROGRAM [ARGS...]

How the bench stage measures the memory of one benchmark process: `ru_maxrss` of
exactly that child (from wait4), which the stage's own rusage cannot tell apart from
the compilers it ran before. Standard library only: it runs as a script, not an import.
The exit code is the program's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Run argv[1:], write {"peak_rss": bytes, "exit": code} to argv[0]."""
    if len(argv) < 2:
        print("usage: peak_rss.py OUT.json PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    out, cmd = Path(argv[0]), argv[1:]
    try:
        proc = subprocess.Popen(cmd)
    except OSError as err:
        print(f"peak_rss: cannot run {cmd[0]}: {err.strerror}", file=sys.stderr)
        return 127
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except KeyboardInterrupt:  # the whole process group was interrupted
        proc.wait()
        return 130
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped here: Popen must not wait for it again
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    out.write_text(json.dumps({"peak_rss": usage.ru_maxrss * scale, "exit": code}))
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
