"""The rollout's state, persisted (atomically) after every step, so a controller killed
at any point (SIGKILL, a lost runner) leaves enough for the next run to finish
consistently: `recovery(state)` says what that run does first.

Phases, in order: started -> new_up (new colour started, 0%) -> shifting (a step's
weights set) -> watching (100%, old colour still up) -> stopping_old -> done; or
rolling_back -> rolled_back. A lock (flock on `lock`, released by the kernel when the
process dies, however it dies) keeps two controllers apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ci.result import atomic_write
from deploy.errors import PreconditionFailed

ACTIVE = ("started", "new_up", "shifting", "watching", "stopping_old", "rolling_back")
FILE = "rollout.json"


@dataclass
class RolloutState:
    """One rollout (or rollback), as written to `<state_dir>/rollout.json`."""

    id: str
    version: str
    image: str
    new: str  # colour
    old: str  # colour ("" on the very first deployment)
    old_version: str = ""
    phase: str = "started"
    step: int = -1  # index into steps (-1: no traffic yet)
    weights: dict[str, int] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)
    dep_id: str | None = None  # history store
    github_id: int | None = None  # GitHub deployment
    started_at: str = ""
    reason: str = ""
    trigger: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """True while the rollout is unfinished."""
        return self.phase in ACTIVE


def load(folder: Path) -> RolloutState | None:
    """The last rollout's state, or None."""
    path = folder / FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise PreconditionFailed(f"cannot read the rollout state {path}: {err}") from None
    known = RolloutState.__dataclass_fields__
    return RolloutState(**{k: v for k, v in data.items() if k in known})


def save(folder: Path, state: RolloutState) -> None:
    """Write the state atomically (temp file + rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / FILE, json.dumps(asdict(state), indent=1, sort_keys=True) + "\n")


def recovery(state: RolloutState | None) -> str:
    """What a new run does about an unfinished rollout: "none" (nothing unfinished),
    "forward" (it had passed every step: stop the old colour and close it), or
    "rollback" (traffic back to the old colour, stop the new one)."""
    if state is None or not state.active:
        return "none"
    if state.phase in ("watching", "stopping_old") or not state.old:
        return "forward"
    return "rollback"


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the controller lock for the block; PreconditionFailed naming the holder when
    another controller runs."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "controller.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise PreconditionFailed(
                f"another production rollout is running ({holder}): wait for it, or stop it "
                "with Ctrl-C (it rolls back)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
