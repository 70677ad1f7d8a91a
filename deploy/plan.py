"""The staging deployment's plan: a pure function of what the read-only probes found
(`Facts`), shown before anything changes. `--dry-run` stops after showing it."""

from __future__ import annotations

from dataclasses import dataclass

from deploy.compose import Running
from deploy.release import ImageName, Release


@dataclass(frozen=True)
class Facts:
    """What the probes found: nothing has changed anywhere yet."""

    release: Release
    image: ImageName
    base: str  # the base image, or "" when a local stand-in will be built
    base_public: str
    registry_up: bool
    registry_start: bool  # no registry answers: a local one is started for the run
    host: str
    compose: tuple[str, ...]
    remote_dir: str
    project: str
    current: Running | None  # what runs there now
    good: Running | None  # the last release that passed its checks: the rollback target
    url: str
    health_timeout: float
    notifier: str
    history: str
    e2e: bool
    rollback: bool


@dataclass(frozen=True)
class Plan:
    """The steps, in order, as lines a person reads before anything happens."""

    facts: Facts
    steps: tuple[str, ...]

    @property
    def rollback_target(self) -> Running | None:
        """What a failed release is replaced with (None: nothing to go back to)."""
        return self.facts.good if self.facts.rollback else None


def make_plan(facts: Facts) -> Plan:
    """The deployment's steps for `facts`."""
    rel, img = facts.release, facts.image
    tags = ", ".join(img.tagged(t) for t in rel.tags())
    base = facts.base or f"a local stand-in for {facts.base_public} (the engine cannot pull it)"
    steps = []
    if facts.registry_start:
        steps.append(f"start a local registry on {img.registry} for this run")
    steps += [
        f"build {tags} from {rel.binary} (sha256 {rel.sha256[:16]}…) on {base}",
        f"push to {img.registry}; the host runs it pinned by the pushed digest",
        f"write release {rel.version} to {facts.host}:{facts.remote_dir} and "
        f"`{' '.join(facts.compose)} -p {facts.project} pull && up -d`",
        f"wait for {facts.url}/health (up to {facts.health_timeout:g}s), check the running "
        "digest, run the smoke suite",
    ]
    target = facts.good.describe() if facts.good else None
    if not facts.rollback:
        steps.append("on failure: leave it as it is (rollback disabled)")
    elif target:
        steps.append(f"on failure: redeploy {target} and verify it is healthy")
    else:
        steps.append("on failure: stop the new release (no earlier good release to restore)")
    steps.append(
        "run the e2e suite (its failure blocks production)"
        if facts.e2e
        else "e2e: skipped (e2e = false)"
    )
    steps += [f"notify: {facts.notifier}", f"record the deployment in {facts.history}"]
    return Plan(facts, tuple(steps))


def show(plan: Plan) -> list[str]:
    """The plan as the lines printed before acting."""
    f = plan.facts
    rel = f.release
    dirty = " (built from a dirty tree)" if rel.dirty else ""
    now = f.current.describe() if f.current else "nothing deployed yet"
    lines = [
        f"deploy {rel.binary_name} {rel.version} ({rel.short_commit}){dirty} to staging",
        f"  host {f.host}, project {f.project}: now {now}",
    ]
    lines += [f"  {i}. {step}" for i, step in enumerate(plan.steps, 1)]
    return lines
