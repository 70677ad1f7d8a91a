"""The production flow's GitHub records, through the REST API when a token is set:
the deployment ticket (`POST /deployments`, then its statuses), the approvals of the
Actions run's protected environment (`GET /actions/runs/{id}/approvals`), and the
incident issue after a rollback (`POST /issues`). Built on ci.release.github's client
(retries, one-line errors, the token only in a header)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ci.errors import PipelineError
from ci.github.client import GitHub
from ci.github.retry import Backoff
from deploy.errors import PreconditionFailed
from deploy.rollout.config import ProductionConfig

Json = dict[str, Any]


def release_ref(version: str) -> str:
    """The git ref of `version`: its release tag (`invoke release` tags vX.Y.Z), which a
    GitHub deployment must name (GitHub answers 422 for a ref the repository lacks)."""
    return version if version.startswith("v") else f"v{version}"


class Records:
    """GitHub deployments, statuses, approvals and issues of one repository."""

    def __init__(self, cfg: ProductionConfig, say: Callable[[str], None]) -> None:
        assert cfg.github_token is not None
        if not cfg.github_repository:
            raise PreconditionFailed(
                "a GitHub token is set but no repository: set $GITHUB_REPOSITORY or "
                "[tool.pipeline.production] github_repository"
            )
        self.cfg = cfg
        self.say = say
        self.api = GitHub(
            cfg.github_api,
            cfg.github_repository,
            cfg.github_token.value,
            backoff=Backoff(attempts=3, first=0.5, budget=30),
            timeout=15,
            say=say,
        )

    def close(self) -> None:
        """Close the HTTP session."""
        self.api.close()

    def _url(self, path: str) -> str:
        return f"{self.api.api}/repos/{self.api.repository}{path}"

    def create_deployment(self, ref: str, version: str, payload: Json) -> int:
        """The deployment ticket; its id. Required contexts are not re-checked here:
        the pipeline gates already ran."""
        body = {
            "ref": ref,
            "environment": self.cfg.environment,
            "description": f"production rollout of {version}",
            "auto_merge": False,
            "required_contexts": [],
            "production_environment": True,
            "payload": payload,
        }
        resp = self.api.request(
            "POST", self._url("/deployments"), "create the deployment", ok=(201,), json=body
        )
        return int(resp.json()["id"])

    def status(self, dep: int, state: str, description: str, url: str = "") -> None:
        """Add a status: in_progress, success, failure, error or inactive."""
        body = {"state": state, "description": description[:140]}
        if url:
            body["environment_url"] = url
        self.api.request(
            "POST",
            self._url(f"/deployments/{dep}/statuses"),
            f"set the deployment status {state}",
            ok=(201,),
            json=body,
        )

    def run_approvals(self, run_id: str) -> list[Json]:
        """Every environment review of Actions run `run_id`, as GitHub reports them
        (`approvals.check_github` decides which count)."""
        resp = self.api.request(
            "GET", self._url(f"/actions/runs/{run_id}/approvals"), "read the run's approvals"
        )
        return [item for item in resp.json() or [] if isinstance(item, dict)]

    def run(self, run_id: str) -> Json:
        """The Actions run (its title, when it started)."""
        resp = self.api.request("GET", self._url(f"/actions/runs/{run_id}"), "read the run")
        data = resp.json()
        return data if isinstance(data, dict) else {}

    def open_issue(self, title: str, body: str) -> str:
        """Open an issue; its URL."""
        payload = {"title": title, "body": body[:65000], "labels": list(self.cfg.issue_labels)}
        resp = self.api.request(
            "POST", self._url("/issues"), "open the incident issue", ok=(201,), json=payload
        )
        data = resp.json()
        return str(data.get("html_url") or data.get("url") or f"#{data.get('number')}")


def records(cfg: ProductionConfig, say: Callable[[str], None]) -> Records | None:
    """The GitHub records when a token is configured, else None (history store only)."""
    return Records(cfg, say) if cfg.github_token else None


def safely(say: Callable[[str], None], what: str, action: Callable[[], Any]) -> Any:
    """Run a GitHub call after the rollout has started: a failure is a warning (what
    happened to the traffic stays true), never the deployment's verdict."""
    try:
        return action()
    except PipelineError as err:
        say(f"github: could not {what}: {err}")
        return None
