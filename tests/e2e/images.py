"""Builds small local images from the host's own binaries (FROM scratch + the binary and
the shared libraries ldd lists), so the docker backend is exercised for real on
machines that cannot pull from any registry."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_LIB = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def shared_libs(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return sorted({m[1] for m in _LIB.finditer(out)})


def build_scratch_image(tag: str, binary: str, cmd: list[str]) -> str:
    """`docker build` an image holding only `binary` and its libraries; returns the tag."""
    with tempfile.TemporaryDirectory(prefix="scratch-image-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        for path in [binary, *shared_libs(binary)]:
            dest = rootfs / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(path).resolve(), dest)
        (rootfs / "tmp").mkdir()
        entry = ", ".join(f'"{part}"' for part in [binary, *cmd])
        (Path(tmp) / "Dockerfile").write_text(
            f"FROM scratch\nCOPY rootfs/ /\nWORKDIR /tmp\nENTRYPOINT [{entry}]\n"
        )
        subprocess.run(
            ["docker", "build", "-q", "-t", tag, tmp], check=True, capture_output=True, text=True
        )
    return tag
