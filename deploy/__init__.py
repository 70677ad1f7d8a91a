"""Deployment: the container image of the release binary, the registry it is pushed to,
the hosts it runs on, the checks that prove it serves, and the notifications and records
around it. `invoke deploy.staging` is the first flow built from these parts (see
deploy/staging.py); the production rollout reuses them.

Every variation point is a small Protocol with one implementation per target:
`registry.Registry` (the Distribution HTTP API), `host.Host` (Fabric over SSH),
`notify.Notifier` (a Slack incoming webhook, or none). The flow's decisions (plan,
rollback target, verdicts) are pure functions over frozen dataclasses, tested without
docker, SSH or a network.
"""
