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


class _Stop(Exception):
    """Raised by the recording backend when the rollback starts a colour."""


class _Recorder:
    """A backend that records calls; blue serves 1.0.1 at 100%; starting a colour stops
    the test (the switch itself is the controller's, tested elsewhere)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def describe(self) -> str:
        return "recorder"

    def check(self) -> None:
        self.calls.append(("check",))

    def colours(self) -> dict:
        from deploy.rollout.backend import ColourState

        return {
            "blue": ColourState("blue", True, "1.0.1", "", 100),
            "green": ColourState("green", False, "", "", 0),
        }

    def start(self, colour: str, release: object) -> None:
        self.calls.append(("start", colour))
        raise _Stop

    def __getattr__(self, name: str) -> object:
        def act(*args: object, **kwargs: object) -> None:
            self.calls.append((name, *args))

        return act


D_OLD, D_LIVE, D_NEW = ("sha256:" + c * 64 for c in "abc")


def _served(s, version: str, digest: str, outcome: str) -> None:
    log = DeploymentLog(s, "production", print)
    log.finish(log.start(version, digest, None, {"kind": "rollout"}), outcome, {})


@pytest.fixture
def prod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from deploy.rollout import run

    env = {
        "CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3"),
        "CIPIPE_PRODUCTION__STATE_DIR": str(tmp_path / "state"),
        "CIPIPE_OUTPUT_DIR": str(tmp_path / "out"),
        "PRODUCTION_DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db",
        "PRODUCTION_REDIS_URL": "redis://127.0.0.1:1/0",
        "DEPLOY_APPROVER": "ops@example.com",  # the old code's identity (no git call)
        "DEPLOY_OPERATOR": "ops@example.com",
    }
    s = load(ROOT, env)
    _served(s, "1.0.0", D_OLD, "succeeded")
    _served(s, "1.0.1", D_LIVE, "succeeded")
    _served(s, "1.1.0", D_NEW, "rolled_back")  # tripped a trigger: never served well
    registry = {"1.0.0": D_OLD, "1.0.1": D_LIVE, "1.1.0": D_NEW, "2.0.0": D_NEW}
    backend = _Recorder()
    monkeypatch.setattr(run, "make_backend", lambda *a: backend)
    monkeypatch.setattr(
        run, "resolve", lambda st, cfg, v: (registry[v], f"reg/trading@{registry[v]}")
    )
    from ci.runner import Runner

    with Runner(echo=False) as runner:
        yield s, runner, backend, registry


@pytest.mark.parametrize(
    ("target", "why"),
    [("2.0.0", "never served production"), ("1.1.0", "never served production")],
)
def test_rollback_refuses_a_version_that_never_served_production(prod, target, why) -> None:
    from deploy.errors import PreconditionFailed
    from deploy.rollout import run

    s, runner, backend, _ = prod
    with pytest.raises(PreconditionFailed) as err:
        run.rollback(s, runner, target)
    line = str(err.value)
    assert why in line and f"invoke deploy.production --version {target}" in line
    assert "\n" not in line
    assert not [c for c in backend.calls if c[0] != "check"]  # nothing changed


def test_rollback_refuses_a_tag_pushed_again_with_another_image(prod) -> None:
    from deploy.errors import PreconditionFailed
    from deploy.rollout import run

    s, runner, backend, registry = prod
    registry["1.0.0"] = D_NEW
    with pytest.raises(PreconditionFailed, match="not the image that served production"):
        run.rollback(s, runner, "1.0.0")
    assert not [c for c in backend.calls if c[0] != "check"]


def test_rollback_to_a_version_that_served_goes_ahead(prod) -> None:
    from deploy.rollout import run

    s, runner, backend, _ = prod
    with pytest.raises(_Stop):
        run.rollback(s, runner, "1.0.0")
    assert ("start", "green") in backend.calls


def test_a_main_build_never_reaches_production(prod) -> None:
    """A push to main stages `<version>-main.g<commit>`; production takes only releases."""
    from deploy.errors import PreconditionFailed
    from deploy.rollout import run

    s, runner, backend, registry = prod
    registry["0.1.0-main.gc0ffee000000"] = D_NEW
    with pytest.raises(PreconditionFailed, match="main build"):
        run.deploy(s, runner, "0.1.0-main.gc0ffee000000", {})
    assert not backend.calls  # nothing started
