"""Removing what a deploy test or benchmark left in the Docker engine: a compose
project's containers, networks and volumes, and the images it pushed (by name prefix).
Used by the deploy tests' fixtures and scripts/bench_staging.py."""

from __future__ import annotations

import subprocess


def remove_images(prefix: str) -> None:
    """Remove every image name starting with `prefix` (what a test pushed)."""
    out = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    names = [n for n in out if n.startswith(prefix)]
    if names:
        subprocess.run(["docker", "rmi", "--no-prune", *names], capture_output=True, check=False)


def compose_down(project: str) -> None:
    """Remove a compose project's containers, networks and volumes (by its labels)."""
    label = f"label=com.docker.compose.project={project}"
    for ls, rm in (
        (["docker", "ps", "-aq"], ["docker", "rm", "-f", "-v"]),
        (["docker", "network", "ls", "-q"], ["docker", "network", "rm"]),
        (["docker", "volume", "ls", "-q"], ["docker", "volume", "rm"]),
    ):
        found = subprocess.run([*ls, "--filter", label], capture_output=True, text=True)
        if found.stdout.split():
            subprocess.run([*rm, *found.stdout.split()], capture_output=True, check=False)


def containers(project: str) -> list[str]:
    label = f"label=com.docker.compose.project={project}"
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True, check=False
    )
    return out.stdout.split()
