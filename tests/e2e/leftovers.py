"""Checks that a run left nothing behind: server processes, data dirs, bound ports."""

from __future__ import annotations

import re
from pathlib import Path

from ci.services.base import port_in_use

READY = re.compile(r"(\w+) \((local|docker)\) ready on 127\.0\.0\.1:(\d+) in [\d.]+s \[(.+?)\]")


def started_services(log: Path) -> list[tuple[str, int, str]]:
    """(name, port, data dir or container) for every service the stage log says it started."""
    return [(m[1], int(m[3]), m[4]) for m in READY.finditer(log.read_text())]


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def assert_nothing_left(log: Path, expect: int = 2) -> None:
    services = started_services(log)
    assert len(services) == expect, f"expected {expect} services in {log}: {services}"
    for name, port, where in services:
        assert not port_in_use(port), f"{name} port {port} still bound"
        if where.startswith("/"):
            assert not Path(where).exists(), f"{name} data dir {where} left behind"
            assert processes_mentioning(where) == [], f"{name} process still running"
