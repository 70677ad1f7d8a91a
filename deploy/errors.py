"""The deploy flows' failures, each with its own exit code (ci.errors uses 1-7 and 130,
the release flow 10-13)."""

from __future__ import annotations

from ci.errors import PipelineError


class DeployError(PipelineError):
    """Base of every expected deployment failure."""

    exit_code = 20


class PreconditionFailed(DeployError):
    """The deployment cannot start: no release manifest, a binary that does not match its
    digest, a missing credential, bad configuration. Raised before anything changes."""

    exit_code = 20


class EngineError(DeployError):
    """The Docker engine is unreachable or could not build the image."""

    exit_code = 21


class RegistryError(DeployError):
    """The registry is unreachable, rejected the credentials or refused the push."""

    exit_code = 22


class HostError(DeployError):
    """The deployment host cannot be reached over SSH (unknown host, refused, host key
    unknown or changed, authentication failed), or a command on it failed."""

    exit_code = 23


class ReleaseUnhealthy(DeployError):
    """The new release failed its health check or smoke tests and was rolled back."""

    exit_code = 24


class RollbackFailed(DeployError):
    """The new release failed and the previous one could not be restored: the
    environment needs a person now."""

    exit_code = 25


class E2EFailed(DeployError):
    """The release serves, but the end-to-end suite failed against it: production is
    blocked for this version."""

    exit_code = 26
