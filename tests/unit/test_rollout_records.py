"""The production flow's records: the GitHub deployment names the release tag (GitHub
answers 422 for a ref it does not have), and `invoke rollback --to V` takes only a
version that served production successfully before."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fakes.github_api import FakeGitHub
from fakes.github_deployments import add_ref, deployments

from ci.errors import PipelineError
from ci.settings import load
from deploy.record import DeploymentLog
from deploy.rollout import config, github
from deploy.rollout.flow import Flow, Parts

ROOT = Path(__file__).resolve().parents[2]


def _flow(tmp_path: Path, api: FakeGitHub) -> Flow:
    s = load(
        ROOT,
        {
            "CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3"),
            "GITHUB_TOKEN": api.token,
            "GITHUB_REPOSITORY": "acme/trading",
            "CIPIPE_PRODUCTION__GITHUB_API": api.url,
        },
    )
    cfg = config.load(s)
    said: list[str] = []
    parts = Parts(
        settings=s,
        cfg=cfg,
        runner=SimpleNamespace(say=said.append),  # type: ignore[arg-type]
        backend=None,  # type: ignore[arg-type]
        log=DeploymentLog(s, cfg.environment, said.append),
        github=github.records(cfg, said.append),
        notifier=None,  # type: ignore[arg-type]
        view=None,  # type: ignore[arg-type]
    )
    return Flow(parts)


def test_the_fake_refuses_a_ref_the_repository_does_not_have(tmp_path: Path) -> None:
    with FakeGitHub() as api:
        rec = _flow(tmp_path, api).p.github
        assert rec is not None
        with pytest.raises(PipelineError, match="422"):
            rec.create_deployment("1.2.3", "1.2.3", {})
        add_ref(api, "acme/trading", "v1.2.3")
        assert rec.create_deployment("v1.2.3", "1.2.3", {}) > 0
        rec.close()


def test_the_github_deployment_is_created_for_the_release_tag(tmp_path: Path) -> None:
    with FakeGitHub() as api:
        add_ref(api, "acme/trading", "v1.2.3")  # what `invoke release` tags
        flow = _flow(tmp_path, api)
        flow.open_record("1.2.3", "sha256:" + "a" * 64, "rollout")
        assert flow.gh_id is not None
        assert deployments(api)[flow.gh_id]["ref"] == "v1.2.3"
        assert github.release_ref("v1.2.3") == "v1.2.3"  # a tag given as the version
