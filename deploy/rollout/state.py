"""The rollout's state, persisted (atomically, temp file + rename) BEFORE every external
action (its `intent`) and after it, so a controller killed at any point (SIGKILL, a
lost runner) leaves enough for the next run to finish consistently: `recovery(state,
colours)` says what that run does first, from the recorded intent and the world read
back.

Phases, in order: started -> new_up (new colour started, 0%) -> shifting (a step's
weights being set or set) -> watching (100%, old colour still up) -> stopping_old (the
rollout passed: the decision is durable before the old colour is touched) -> done; or
rolling_back (the trigger recorded before any traffic moves) -> rolled_back. A lock
(flock on `lock`, released by the kernel when the process dies, however it dies) keeps
two controllers apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ci.result import atomic_write
from deploy.errors import PreconditionFailed
from deploy.rollout.backend import ColourState

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
    intent: dict[str, Any] = field(default_factory=dict)  # the action under way, if any
    recorded: bool = False  # its deployment record closed (after the end)
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
    if isinstance(data, dict) and "recorded" not in data:
        data["recorded"] = data.get("phase") not in ACTIVE  # written before the field
    return RolloutState(**{k: v for k, v in data.items() if k in known})


def save(folder: Path, state: RolloutState) -> None:
    """Write the state atomically (temp file + rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / FILE, json.dumps(asdict(state), indent=1, sort_keys=True) + "\n")


def recovery(state: RolloutState | None, seen: Mapping[str, ColourState] | None = None) -> str:
    """What a new run does about an unfinished rollout, from what was recorded and what
    runs (`seen`: the backend's colours, None when it could not be asked):

    - "none": nothing unfinished;
    - "rollback": a trigger was recorded (finish that rollback, first deployment or
      not), or the rollout had not passed its steps: traffic to the old colour (read
      back), stop the new one;
    - "watch": it was in its final watch and the new colour runs: put (again) all
      traffic on it and watch it again before the old colour goes;
    - "forward": it had passed (recorded before the old colour was touched) and the new
      colour runs: read back 0% on the old colour, stop it;
    - "stuck": it had passed, yet neither colour runs: a person decides.
    """
    if state is None or not state.active:
        return "none"
    if state.trigger or state.phase == "rolling_back":
        return "rollback"
    new_runs = seen is None or seen[state.new].running
    old_runs = bool(state.old) and (seen is None or seen[state.old].running)
    if state.phase == "stopping_old":
        if new_runs:
            return "forward"
        return "rollback" if old_runs else "stuck"
    if state.phase == "watching" and new_runs:
        return "watch"
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
