"""The invoke tasks of the production rollout: `deploy.production`, `deploy.approve`,
`deploy.approvals`, `deploy.proxy` (added to the `deploy` collection) and the top-level
`rollback`."""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, Context, Task, task
from invoke.exceptions import Exit

from deploy.rollout import tasks as entries


def _exit(code: int) -> None:
    if code:
        raise Exit(code=code)


def add(ns: Collection, root: Path) -> None:
    """Add the production tasks to the `deploy` collection."""

    @task(
        help={
            "version": "the version to roll out (its image tag in the registry)",
            "env": "KEY=VALUE for the new colour only (fault drills); repeatable",
        },
        iterable=["env"],
    )
    def production(c: Context, version: str = "", env: list[str] | None = None) -> None:
        """Blue/green production rollout: approvals, checks, 10% -> 50% -> 100% with analysis."""
        _exit(entries.production(root, version, list(env or [])))

    @task(help={"version": "the version you approve for production"})
    def approve(c: Context, version: str = "") -> None:
        """Sign your approval of a version's image with your SSH key (two people needed)."""
        _exit(entries.approve(root, version))

    @task(help={"version": "the version whose approvals to show"})
    def approvals(c: Context, version: str = "") -> None:
        """Who approved a version's image for production, and what counts (changes nothing)."""
        _exit(entries.approval_status(root, version))

    @task(help={"start": "start HAProxy in the background", "stop": "stop the one started here"})
    def proxy(c: Context, start: bool = False, stop: bool = False) -> None:
        """The single-host HAProxy of [production.haproxy]: --start, --stop, or its state."""
        _exit(entries.proxy(root, "start" if start else "stop" if stop else "status"))

    ns.add_task(production, name="production")
    ns.add_task(approve, name="approve")
    ns.add_task(approvals, name="approvals")
    ns.add_task(proxy, name="proxy")


def rollback_task(root: Path) -> Task:
    """`invoke rollback [--to VERSION]`."""

    @task(
        help={
            "to": "the version to switch to (default: the previous good one); only a version "
            "whose image served production successfully before"
        }
    )
    def rollback(c: Context, to: str = "") -> None:
        """Production rollback: abort the running rollout, or all traffic to a version now."""
        _exit(entries.rollback(root, to))

    return rollback
