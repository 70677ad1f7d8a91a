"""What the rollout controller needs from wherever the colours run. One Protocol, two
implementations: haproxy_backend.SingleHost (containers + HAProxy on one host) and
k8s.Kubernetes (Deployments + a Gateway API HTTPRoute)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from deploy.health import Probe
from deploy.rollout.metrics import Counters


@dataclass(frozen=True)
class ColourState:
    """One colour as the backend sees it now."""

    colour: str
    running: bool
    version: str = ""
    image: str = ""
    weight: int = 0  # percent of traffic


@dataclass(frozen=True)
class Release:
    """What a colour is started with."""

    version: str
    image: str  # registry/repository@sha256:... (pinned)
    revision: str = ""
    env: Mapping[str, str] = field(default_factory=dict)  # secrets included: never printed


class Backend(Protocol):
    """Where the colours run and how traffic is split between them."""

    def describe(self) -> str:
        """One line: what and where (for the plan)."""
        ...

    def check(self) -> None:
        """Reachable and usable (the traffic switch above all); a DeployError with one
        line otherwise. Changes nothing."""
        ...

    def colours(self) -> dict[str, ColourState]:
        """Both colours' state."""
        ...

    def start(self, colour: str, release: Release) -> None:
        """Start `release` as `colour` (replacing a stopped one), taking no traffic."""
        ...

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Split traffic: {colour: percent}; the two sum to 100. No reload, open
        connections untouched; returns once the switch reports the new weights."""
        ...

    def drain(self, colour: str, timeout: float) -> int:
        """Wait (bounded) for `colour`'s open connections to end; returns those left."""
        ...

    def stop(self, colour: str, timeout: float) -> None:
        """Stop `colour` (after its traffic went to 0); keeps its logs."""
        ...

    def health(self, colour: str, timeout: float) -> Probe:
        """One /health probe of `colour`, directly (not through the switch)."""
        ...

    def counters(self, colour: str, at: float, timeout: float) -> Counters | None:
        """`colour`'s cumulative counters now (None: could not be scraped)."""
        ...

    def logs(self, colour: str, lines: int) -> str:
        """`colour`'s last log lines."""
        ...

    def raw_metrics(self, colour: str, timeout: float) -> str:
        """`colour`'s /metrics text and the switch's view of it (preserved in reports)."""
        ...
