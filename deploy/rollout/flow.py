"""`invoke deploy.production` and `invoke rollback`, around the controller: the
deployment record first (history store always; a GitHub deployment and its statuses
when a token is set), then the checks that change nothing (approvals, the version in
the registry, its e2e verdict on staging, staging's health, the traffic switch), then
the rollout; afterwards the record closed, the team notified, and after a rollback the
incident report written and an issue opened."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ci.result import atomic_write
from ci.runner import Runner
from ci.settings import Settings
from deploy import notify
from deploy.errors import DeployError, PreconditionFailed, ReleaseUnhealthy
from deploy.notify import Message
from deploy.record import DeploymentLog
from deploy.rollout import incident, state
from deploy.rollout.analysis import Breach
from deploy.rollout.backend import Backend, Release
from deploy.rollout.config import COLOURS, ProductionConfig, other
from deploy.rollout.controller import Controller, Outcome
from deploy.rollout.github import Records, release_ref, safely
from deploy.rollout.live import View
from deploy.rollout.state import RolloutState

ABORT_FILE = "abort.request"


class RolledBack(ReleaseUnhealthy):
    """The rollout tripped a trigger and was rolled back: the old colour serves."""

    exit_code = 24


@dataclass
class Parts:
    """What the flow acts on."""

    settings: Settings
    cfg: ProductionConfig
    runner: Runner
    backend: Backend
    log: DeploymentLog
    github: Records | None
    notifier: notify.Notifier
    view: View
    clock: Callable[[], float] = time.monotonic  # the controller's (tests: a fake clock)
    sleep: Callable[[float], None] = time.sleep


class Flow:
    """One production run (deploy or rollback) over opened parts."""

    def __init__(self, parts: Parts) -> None:
        self.p = parts
        self.cfg = parts.cfg
        self.say = parts.runner.say
        self.dep_id: str | None = None
        self.gh_id: int | None = None

    # ---- records ---------------------------------------------------------------------
    def open_record(
        self,
        version: str,
        digest: str,
        kind: str,
        from_version: str | None = None,
        request: str | None = None,
    ) -> None:
        """The deployment ticket, before anything else (history store, with the approval
        request it uses; GitHub, for the release tag of `version`: GitHub refuses a ref
        the repository does not have)."""
        details = {"kind": kind, "backend": self.cfg.backend, "request": request}
        how = "rollback" if kind == "rollback" else None
        self.dep_id = self.p.log.start(version, digest, from_version, details, trigger_name=how)
        if self.p.github is not None:
            gh = self.p.github
            self.gh_id = gh.create_deployment(release_ref(version), version, {"kind": kind})
            gh.status(self.gh_id, "in_progress", f"{kind} of {version} started")
            self.say(f"github deployment {self.gh_id} ({self.cfg.environment}) in progress")

    def gh_status(self, state_name: str, text: str, gh_id: int | None = None) -> None:
        """A GitHub deployment status (a failure to set it is a warning)."""
        dep = gh_id if gh_id is not None else self.gh_id
        if self.p.github is not None and dep is not None:
            gh = self.p.github
            safely(self.say, "set the deployment status", lambda: gh.status(dep, state_name, text))

    def refuse(self, err: DeployError) -> None:
        """Close the record of a run refused before it changed anything."""
        self.p.log.finish(self.dep_id, "failed", {"refused": str(err), "changed": False})
        self.gh_status("error", f"refused: {err}")

    def notify(self, message: Message) -> None:
        """Tell the team; a failed notification is a warning."""
        problem = self.p.notifier.send(message)
        self.say(f"notify: {problem}" if problem else f"notified: {message.title}")

    # ---- checks ----------------------------------------------------------------------
    def live_colour(self) -> tuple[str, str]:
        """(the colour serving now, its version); ("", "") before the first deployment."""
        colours = self.p.backend.colours()
        serving = [c for c in COLOURS if colours[c].weight > 0 and colours[c].running]
        if not serving:
            return "", ""
        live = max(serving, key=lambda c: colours[c].weight)
        return live, colours[live].version

    def release(self, version: str, image: str, revision: str, extra: Mapping[str, str]) -> Release:
        """The new colour's release: image, database and cache URLs, service env."""
        if self.cfg.database_url is None or self.cfg.redis_url is None:
            raise PreconditionFailed(
                "set $PRODUCTION_DATABASE_URL and $PRODUCTION_REDIS_URL (the backing services "
                "both colours share)"
            )
        env = {"DATABASE_URL": self.cfg.database_url.value, "REDIS_URL": self.cfg.redis_url.value}
        env.update(dict(self.cfg.service_env))
        env.update(extra)
        return Release(version, image, revision, env)

    # ---- running ---------------------------------------------------------------------
    def controller(self, rollout_id: str) -> Controller:
        """A controller saving its state under state_dir, watching for a manual abort
        of rollout `rollout_id`."""
        folder = self.cfg.state_dir
        return Controller(
            self.cfg,
            self.p.backend,
            self.p.view,
            self.say,
            lambda st: state.save(folder, st),
            clock=self.p.clock,
            sleep=self.p.sleep,
            manual=lambda: take_abort(folder, rollout_id),
        )

    def recover_previous(self) -> None:
        """Finish what a killed controller left, before anything new."""
        previous = state.load(self.cfg.state_dir)
        if previous is None or previous.recorded:
            return
        if not previous.active:  # finished, killed before its record was closed
            self.say(f"the rollout of {previous.version} ended {previous.phase}: recording it")
            breach = None if previous.phase == "done" else Breach(previous.trigger, previous.reason)
            out = Outcome(previous.phase == "done", breach)
            ctl = self.controller(previous.id)
            self.conclude(previous, out, ctl, dep_id=previous.dep_id, gh_id=previous.github_id)
            return
        self.say(
            f"an unfinished rollout of {previous.version} ({previous.phase}, step "
            f"{previous.step + 1}) was found: finishing it first"
        )
        ctl = self.controller(previous.id)
        out = ctl.recover(previous)
        self.conclude(previous, out, ctl, dep_id=previous.dep_id, gh_id=previous.github_id)

    def run(self, st: RolloutState, release: Release) -> Outcome:
        """The rollout itself, then its records."""
        (self.cfg.state_dir / ABORT_FILE).unlink(missing_ok=True)  # meant for another run
        state.save(self.cfg.state_dir, st)
        ctl = self.controller(st.id)
        out = ctl.deploy(st, release)
        self.conclude(st, out, ctl, dep_id=self.dep_id, gh_id=self.gh_id)
        return out

    def conclude(
        self,
        st: RolloutState,
        out: Outcome,
        ctl: Controller,
        *,
        dep_id: str | None,
        gh_id: int | None,
    ) -> None:
        """Close the record; after a rollback: report, issue, notification. Then mark the
        state recorded (a controller killed before that point has its successor close
        the record: at least once)."""
        if out.ok:
            self._succeeded(st, ctl, dep_id, gh_id)
        else:
            self._rolled_back(st, out, ctl, dep_id, gh_id)
        st.recorded = True
        state.save(self.cfg.state_dir, st)

    def _succeeded(
        self, st: RolloutState, ctl: Controller, dep_id: str | None, gh_id: int | None
    ) -> None:
        self.p.log.finish(
            dep_id,
            "succeeded",
            {"colour": st.new, "image": st.image, "alerts": len(ctl.alerts)},
        )
        self.gh_status("success", f"{st.version} serves 100% on {st.new}", gh_id)
        self.notify(
            Message(
                f"production: {st.version} live on {st.new}",
                (
                    f"steps {st.steps} passed; {st.old or 'no old colour'} stopped",
                    f"image {st.image}",
                ),
            )
        )

    def _rolled_back(
        self,
        st: RolloutState,
        out: Outcome,
        ctl: Controller,
        dep_id: str | None,
        gh_id: int | None,
    ) -> None:
        assert out.breach is not None
        folder = self.p.settings.out_dir / "production" / f"incident-{st.id}"
        report, text = incident.write(
            folder,
            st,
            ctl.samples,
            out.logs,
            out.raw_metrics,
            out.recovery_s,
            ctl.alerts,
            self.p.runner.redact,
        )
        self.say(f"incident report: {report}")
        ended = datetime.now(UTC)
        if out.recovery_s is not None and out.recovered_at is not None:
            ended = out.recovered_at - _seconds(out.recovery_s)
        details = {
            "trigger": out.breach.trigger,
            "reason": out.breach.detail,
            "step": st.step,
            "report": str(report),
            "recovery_s": out.recovery_s,
        }
        self.p.log.finish(dep_id, "rolled_back" if st.old else "failed", details, at=ended)
        if out.recovered_at is not None:
            self.p.log.recovered(dep_id, out.recovered_at)
        self.gh_status("failure", f"rolled back: {out.breach.trigger}", gh_id)
        issue = None
        if self.p.github is not None:
            gh = self.p.github
            title = f"Production rollback of {st.version}: {out.breach.trigger}"
            issue = safely(self.say, "open the incident issue", lambda: gh.open_issue(title, text))
            if issue:
                self.say(f"incident issue: {issue}")
        lines = [
            f"trigger {out.breach.trigger}: {out.breach.detail}",
            f"{st.old or 'nothing'} serves {st.old_version}".strip(),
        ]
        if out.recovery_s is not None:
            lines.append(f"traffic back in {out.recovery_s * 1000:.0f} ms")
        lines.append(f"report: {issue or report}")
        self.notify(Message(f"production ROLLBACK of {st.version}", tuple(lines), ok=False))


def new_state(
    version: str,
    image: str,
    live: str,
    live_version: str,
    steps: tuple[int, ...],
    dep_id: str | None,
    gh_id: int | None,
) -> RolloutState:
    """The state of a rollout about to start."""
    return RolloutState(
        id=datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6],
        version=version,
        image=image,
        new=other(live) if live else "blue",
        old=live,
        old_version=live_version,
        steps=list(steps),
        dep_id=dep_id,
        github_id=gh_id,
        started_at=datetime.now(UTC).isoformat(),
    )


def request_abort(folder: Path, who: str, rollout_id: str) -> None:
    """Ask the controller running rollout `rollout_id` to roll back (a file it checks
    at every sample; any other rollout ignores and removes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / ABORT_FILE, json.dumps({"who": who, "rollout": rollout_id}) + "\n")


def take_abort(folder: Path, rollout_id: str) -> str | None:
    """Who asked rollout `rollout_id` to roll back, consuming the request; None when
    nobody did (a request for another rollout is dropped)."""
    path = folder / ABORT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    path.unlink(missing_ok=True)
    if not isinstance(data, dict) or data.get("rollout") != rollout_id:
        return None
    return str(data.get("who") or "someone")


def abort_result(folder: Path, st: RolloutState) -> str:
    """The answer to `invoke rollback` after it asked a running rollout to stop: what
    really happened. DeployError when it did not roll back (it had already passed and
    was stopping the old colour, or is still running)."""
    if st.phase == "rolled_back":
        return f"rolled back: {st.old or 'nothing'} serves {st.old_version}".rstrip()
    (folder / ABORT_FILE).unlink(missing_ok=True)
    if st.phase == "done":
        raise DeployError(
            f"too late to roll back: {st.version} had passed every step and serves 100% on "
            f"{st.new}; {st.old or 'nothing'} was already being stopped. To go back, run "
            f"`invoke rollback` again (it switches to the previous good version)"
        )
    raise DeployError(
        f"the rollout of {st.version} did not roll back ({st.phase}): check it with "
        "`invoke deploy.proxy --status` and the state in [production] state_dir"
    )


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def wait_for(check: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Poll `check` until true or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()
