"""The bodies of the production entry points (deploy/rollout/tasks.py runs them):
open the parts, the checks that change nothing, then the flow."""

from __future__ import annotations

import getpass
import subprocess
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ci.errors import Interrupted
from ci.history import open_store
from ci.release.version import is_snapshot
from ci.runner import Runner
from ci.settings import Settings
from deploy import notify
from deploy.config import RegistryTarget, _secret
from deploy.errors import DeployError, PreconditionFailed
from deploy.health import probe_health
from deploy.record import DeploymentLog, promotion_verdict
from deploy.registry import DistributionRegistry
from deploy.release import _TAG_CHARS
from deploy.rollout import approvals, config, github, sign_off, signers, state
from deploy.rollout.approvals import Request
from deploy.rollout.backend import Backend
from deploy.rollout.config import ProductionConfig, other
from deploy.rollout.flow import (
    Flow,
    Parts,
    RolledBack,
    abort_result,
    new_state,
    request_abort,
    wait_for,
)
from deploy.rollout.haproxy import Daemon
from deploy.rollout.live import View


def make_backend(settings: Settings, cfg: ProductionConfig, runner: Runner) -> Backend:
    """The configured backend."""
    if cfg.backend == "kubernetes":
        from deploy.rollout.k8s import Kubernetes

        return Kubernetes(cfg.kube, runner)
    from deploy import engine
    from deploy.rollout.haproxy_backend import SingleHost

    return SingleHost(cfg.haproxy, engine.connect(settings.env), runner.say)


def parts(settings: Settings, runner: Runner) -> Parts:
    """Configuration, backend, history log, GitHub, notifier, view."""
    cfg = config.load(settings)
    runner.redact.add(cfg.secrets())
    return Parts(
        settings=settings,
        cfg=cfg,
        runner=runner,
        backend=make_backend(settings, cfg, runner),
        log=DeploymentLog(settings, cfg.environment, runner.say),
        github=github.records(cfg, runner.say),
        notifier=notify.notifier(cfg.webhook),
        view=View(cfg.thresholds, runner.say, every=max(1.0, cfg.sample_interval * 5)),
    )


def resolve(settings: Settings, cfg: ProductionConfig, version: str) -> tuple[str, str]:
    """(digest, pinned image) of `version` in the registry; DeployError when absent."""
    password = _secret(
        settings.env,
        "REGISTRY_PASSWORD",
        settings.section("staging").path("registry_password_file"),
        "registry password",
    )
    target = RegistryTarget(
        cfg.registry,
        settings.env.get("REGISTRY_USERNAME", "").strip(),
        password,
        False,
        settings.root,
    )
    tag = _TAG_CHARS.sub("_", version)[:120]
    digest = DistributionRegistry(target).digest(cfg.repository, tag)
    if digest is None:
        raise PreconditionFailed(
            f"version {version} is not in the registry ({cfg.registry}/{cfg.repository}:{tag} "
            "does not exist): release it and deploy it to staging first"
        )
    return digest, f"{cfg.registry}/{cfg.repository}@{digest}"


def staging_url(settings: Settings) -> str:
    """Where staging answers (as deploy.config computes it)."""
    s = settings.section("staging")
    url = s.text("url").strip().rstrip("/")
    if url:
        return url
    host = s.text("host").strip()
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{s.whole('port', minimum=1)}"


def checks(p: Parts, version: str, digest: str, request: Request | None) -> None:
    """Everything that must hold before the new colour starts; changes nothing."""
    if is_snapshot(version):
        raise PreconditionFailed(
            f"{version} is a main build (staging only, never released): production takes "
            "releases; tag the commit vX.Y.Z, run the release, then deploy that version"
        )
    sign_off.check(p.settings, p.cfg, p.github, version, digest, request, p.runner.say)
    if p.cfg.require_e2e:
        verdict = promotion_verdict(p.settings, version, digest)
        if not verdict.ok:
            raise PreconditionFailed(f"{verdict.reason}: production takes only what passed e2e")
        p.runner.say(verdict.reason)
    if p.cfg.check_staging:
        url = staging_url(p.settings)
        probe = probe_health(url, p.cfg.request_timeout)
        if not probe.healthy:
            raise PreconditionFailed(
                f"staging is not healthy ({url}/health: {probe.detail}): fix staging first"
            )
        p.runner.say(f"staging healthy ({urlsplit(url).netloc})")
    p.backend.check()


def deploy(settings: Settings, runner: Runner, version: str, extra: Mapping[str, str]) -> str:
    """`invoke deploy.production --version V`: the final line."""
    p = parts(settings, runner)
    flow = Flow(p)
    with state.locked(p.cfg.state_dir):
        problem: DeployError | None = None
        request = None
        try:
            digest, image = resolve(settings, p.cfg, version)
            request = approvals.find_request(settings, p.cfg.environment, version, digest)
        except DeployError as err:
            digest, image, problem = "", "", err
        flow.open_record(version, digest, "rollout", request=request.id if request else None)
        try:
            if problem is not None:
                raise problem
            checks(p, version, digest, request)
            flow.recover_previous()
            live, live_version = flow.live_colour()
            release = flow.release(version, image, "", extra)
        except DeployError as err:
            flow.refuse(err)
            raise
        runner.say(
            f"plan: {version} on {other(live) if live else 'blue'} via "
            f"{p.backend.describe()}; steps {list(p.cfg.steps)}%, bake "
            f"{p.cfg.bake:g}s each, final watch {p.cfg.final_watch:g}s"
        )
        st = new_state(version, image, live, live_version, p.cfg.steps, flow.dep_id, flow.gh_id)
        try:
            out = flow.run(st, release)
        finally:
            p.view.close()
    if out.ok:
        return f"production: {version} serves 100% on {st.new}"
    assert out.breach is not None
    if out.interrupted:
        raise Interrupted(f"interrupted: rolled back, {st.old or 'nothing'} serves")
    took = f" in {out.recovery_s * 1000:.0f} ms" if out.recovery_s is not None else ""
    raise RolledBack(
        f"{version} rolled back ({out.breach.trigger}: {out.breach.detail}); "
        f"{st.old or 'nothing'} serves {st.old_version}{took}".replace("  ", " ")
    )


def previous_version(settings: Settings, environment: str, live_version: str) -> str:
    """The newest successful production version other than the live one."""
    with open_store(settings) as store:
        deps = store.deployments(environment)
    for dep in reversed(deps):
        if dep.outcome == "succeeded" and dep.version != live_version:
            return dep.version
    raise PreconditionFailed(
        f"no earlier successful production version than {live_version or 'none'} to roll "
        "back to: name one with --to VERSION"
    )


def served_before(settings: Settings, environment: str, version: str, digest: str) -> None:
    """A rollback goes straight to 100% with no analysis: only a version whose very
    image served `environment` successfully before may take that shortcut."""
    with open_store(settings) as store:
        deps = store.deployments(environment)
    good = [d for d in deps if d.outcome == "succeeded" and d.version == version]
    normal = f"take it through a normal rollout: invoke deploy.production --version {version}"
    if not good:
        served = sorted({d.version for d in deps if d.outcome == "succeeded"})
        raise PreconditionFailed(
            f"rollback --to {version} refused: {version} never served {environment} "
            f"successfully (versions that did: {', '.join(served) or 'none'}); {normal}"
        )
    if digest not in {d.digest for d in good}:
        raise PreconditionFailed(
            f"rollback --to {version} refused: the registry's {version} ({digest}) is not "
            f"the image that served {environment} ({good[-1].digest}): the tag was pushed "
            f"again; {normal}"
        )


def rollback(settings: Settings, runner: Runner, to: str) -> str:
    """`invoke rollback [--to V]`: abort the running rollout (manual trigger), or switch
    all traffic to V (default: the previous good version) on the idle colour."""
    p = parts(settings, runner)
    who = operator(settings.env, settings.root)
    try:
        lock = state.locked(p.cfg.state_dir)
        lock.__enter__()
    except PreconditionFailed:
        running = state.load(p.cfg.state_dir)
        request_abort(p.cfg.state_dir, who, running.id if running else "")
        runner.say(f"a rollout is running: asked it to roll back (manual trigger by {who})")
        done = wait_for(lambda: not (state.load(p.cfg.state_dir) or _done()).active, 120)
        st = state.load(p.cfg.state_dir)
        if not done or st is None:
            raise DeployError("the running rollout did not roll back within 120s") from None
        return abort_result(p.cfg.state_dir, st)
    try:
        flow = Flow(p)
        previous = state.load(p.cfg.state_dir)
        if previous is not None and previous.active:
            p.backend.check()
            ctl = flow.controller(previous.id)
            out = ctl.rollback(previous, _manual(who))
            flow.conclude(previous, out, ctl, dep_id=previous.dep_id, gh_id=previous.github_id)
            return f"rolled back: {previous.old or 'nothing'} serves {previous.old_version}"
        p.backend.check()
        live, live_version = flow.live_colour()
        target = to or previous_version(settings, p.cfg.environment, live_version)
        digest, image = resolve(settings, p.cfg, target)
        served_before(settings, p.cfg.environment, target, digest)
        flow.open_record(target, digest, "rollback", from_version=live_version or None)
        release = flow.release(target, image, "", {})
        st = new_state(target, image, live, live_version, (100,), flow.dep_id, flow.gh_id)
        state.save(p.cfg.state_dir, st)
        ctl = flow.controller(st.id)
        out = ctl.switch(st, release)
        if not out.ok:
            p.log.finish(flow.dep_id, "failed", {"reason": out.breach.detail if out.breach else ""})
            flow.gh_status("failure", "rollback failed its health gate")
            raise RolledBack(
                f"rollback to {target} failed: {out.breach.detail if out.breach else ''}"
                f"; {live or 'nothing'} still serves {live_version}"
            )
        p.log.finish(flow.dep_id, "succeeded", {"colour": st.new, "image": image})
        flow.gh_status("success", f"rolled back to {target}")
        flow.notify(
            notify.Message(
                f"production rolled back to {target}",
                (f"{st.new} serves {target}; {live or '-'} stopped",),
            )
        )
        return f"production rolled back: {target} serves 100% on {st.new}"
    finally:
        lock.__exit__(None, None, None)


def _manual(who: str) -> Any:
    from deploy.rollout.analysis import MANUAL, Breach

    return Breach(MANUAL, f"manual rollback requested by {who}")


def _done() -> Any:
    return state.RolloutState(id="", version="", image="", new="", old="", phase="done")


def approve(settings: Settings, runner: Runner, version: str) -> str:
    """`invoke deploy.approve --version V`: sign this person's approval of V's image in
    the registry."""
    cfg = config.load(settings)
    signers.load_allowed(cfg.approvers_file)
    key = signers.signing_key(settings.env, settings.root)
    digest, _ = resolve(settings, cfg, version)
    return sign_off.approve(settings, cfg, version, digest, key)


def approval_status(settings: Settings, runner: Runner, version: str) -> str:
    """`invoke deploy.approvals --version V`: who approved V's image, what counts."""
    cfg = config.load(settings)
    runner.redact.add(cfg.secrets())
    digest, _ = resolve(settings, cfg, version)
    gh = github.records(cfg, runner.say)
    try:
        return sign_off.status(settings, cfg, gh, version, digest, runner.say)
    finally:
        if gh is not None:
            gh.close()


def operator(env: Mapping[str, str], root: object = None) -> str:
    """Who asks for a rollback, for the record: $DEPLOY_OPERATOR, else git's user.email,
    else the login name. A label, not an authentication (a rollback needs no approval)."""
    given = env.get("DEPLOY_OPERATOR", "").strip()
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "config", "user.email"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=str(root) if root else None,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or getpass.getuser()


def proxy(settings: Settings, runner: Runner, action: str) -> str:
    """Start/stop/show the HAProxy of the single-host backend."""
    cfg = config.load(settings)
    daemon = Daemon(cfg.haproxy, cfg.state_dir)
    if action == "start":
        live = state.load(cfg.state_dir)
        weights = {"blue": 0, "green": 0}
        if live is not None and live.phase in ("done", "stopping_old"):
            weights[live.new] = 100  # it had passed: the old colour may be stopped already
        elif live is not None and live.old:
            weights[live.old] = 100  # rolled back, or unfinished: the old colour serves
        started = daemon.start(weights)
        return f"HAProxy on {cfg.haproxy.bind} (pid {started}; runtime API {cfg.haproxy.socket})"
    if action == "stop":
        return "HAProxy stopped" if daemon.stop() else "HAProxy was not started here"
    pid = daemon.pid()
    return f"HAProxy: {'running (pid ' + str(pid) + ')' if pid else 'not started here'}"
