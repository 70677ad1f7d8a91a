"""Deployments and their verdicts in the pipeline's history store (ci/history): every
deployment (version, digest, environment, start, end, outcome; recovery time after a
rollback) for the deployment-frequency and time-to-restore metrics, and the e2e verdict
of each version on staging, which the production flow checks before it starts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ci.errors import HistoryError
from ci.history import Measurement, current_context, open_store
from ci.history.records import utc_now
from ci.settings import Settings

E2E_KIND = "e2e"


@dataclass(frozen=True)
class Verdict:
    """Whether a version may be promoted past an environment, and why."""

    ok: bool
    reason: str


def trigger(env: Mapping[str, str]) -> str:
    """Who started the deployment: "ci" under GitHub Actions, else "manual"."""
    return "ci" if env.get("GITHUB_ACTIONS") == "true" else "manual"


class DeploymentLog:
    """Writes one environment's deployments. Each call opens the store for one
    transaction, so a long deployment holds no lock. After the flow has started acting,
    a history failure is a warning through `warn` (what happened on the host stays
    true); `check()` before acting makes an unusable store a precondition failure."""

    def __init__(self, settings: Settings, environment: str, warn: Callable[[str], None]) -> None:
        self.settings = settings
        self.environment = environment
        self.warn = warn

    def check(self) -> str:
        """Open (create) the store once; HistoryError when it cannot be used."""
        with open_store(self.settings) as store:
            return store.location

    def _safely(self, what: str, action: Callable[[Any], Any]) -> Any:
        try:
            with open_store(self.settings) as store:
                return action(store)
        except HistoryError as err:
            self.warn(f"history: could not record {what}: {err}")
            return None

    def start(
        self,
        version: str,
        digest: str,
        from_version: str | None,
        details: Mapping[str, Any],
        trigger_name: str | None = None,
    ) -> str | None:
        """Record the deployment as started; its id (None if it could not be recorded).
        `trigger_name` replaces the default ("ci" / "manual"), e.g. "rollback"."""
        result: str | None = self._safely(
            "the deployment start",
            lambda store: store.start_deployment(
                self.environment,
                version,
                digest,
                trigger=trigger_name or trigger(self.settings.env),
                from_version=from_version,
                details=dict(details),
            ),
        )
        return result

    def finish(
        self,
        dep_id: str | None,
        outcome: str,
        details: Mapping[str, Any],
        at: datetime | None = None,
    ) -> None:
        """Set the outcome: succeeded, failed or rolled_back (`at`: when it ended, e.g.
        when a rollout's trigger fired; default now)."""
        if dep_id is None:
            return
        self._safely(
            f"the outcome {outcome}",
            lambda store: store.finish_deployment(dep_id, outcome, details=dict(details), at=at),
        )

    def recovered(self, dep_id: str | None, at: datetime) -> None:
        """When the previous release served again after a failed deployment."""
        if dep_id is None:
            return
        self._safely("the recovery time", lambda store: store.mark_recovered(dep_id, at))

    def e2e(self, version: str, digest: str, status: str, seconds: float, counts: str) -> None:
        """Record the e2e verdict of `version` (`digest`) on this environment."""
        meta = {"environment": self.environment, "version": version, "digest": digest}
        run = current_context(self.settings, E2E_KIND, meta={**meta, "tests": counts})
        done = run.finished(status, at=utc_now())
        values = [Measurement("e2e", "duration", round(seconds, 3), "s")]
        self._safely("the e2e verdict", lambda store: store.record(done, values))


def promotion_verdict(
    settings: Settings, version: str, digest: str, environment: str = "staging"
) -> Verdict:
    """May `version` (`digest`) go to production? Only when its latest e2e run on
    `environment` passed against that very image."""
    with open_store(settings) as store:
        run = store.latest(
            E2E_KIND, meta={"environment": environment, "version": version, "digest": digest}
        )
    if run is None:
        return Verdict(False, f"{version} has no e2e run on {environment}: deploy it there first")
    if run.run.status != "passed":
        when = run.run.started_at.strftime("%Y-%m-%d %H:%M UTC")
        return Verdict(
            False, f"the e2e suite {run.run.status} for {version} on {environment} ({when})"
        )
    return Verdict(True, f"e2e passed for {version} on {environment}")
