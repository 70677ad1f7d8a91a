"""The single-host backend: each colour a container of the release image (pulled from
the registry by digest, the image the staging flow pushed), on the host's network at
its own port; HAProxy in front moves the traffic through its runtime API."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from deploy.engine import short_error
from deploy.errors import EngineError
from deploy.health import Probe, probe_health
from deploy.rollout.backend import ColourState, Release
from deploy.rollout.config import COLOURS, HaproxyConfig
from deploy.rollout.haproxy import BACKEND, ProxyError, Runtime
from deploy.rollout.metrics import Counters, from_prometheus, haproxy_servers, with_proxy

LABEL = "io.pipeline.production"


def haproxy_servers_of(stat: str) -> dict[str, dict[str, str]]:
    """The app backend's servers from `show stat`."""
    return haproxy_servers(stat, BACKEND)


class SingleHost:
    """Blue and green containers behind HAProxy on this host."""

    def __init__(self, cfg: HaproxyConfig, client: Any, say: Any = print) -> None:
        self.cfg = cfg
        self.client = client
        self.say = say
        self.runtime = Runtime(cfg.socket)
        logging.getLogger("urllib3").setLevel(logging.WARNING)

    # ---- identity --------------------------------------------------------------------
    def name(self, colour: str) -> str:
        """The container name of `colour`."""
        return f"{self.cfg.name}-{colour}"

    def url(self, colour: str) -> str:
        """Where `colour` answers directly."""
        return f"http://{self.cfg.host}:{self.cfg.ports[colour]}"

    def describe(self) -> str:
        """The plan's line."""
        return (
            f"containers {self.name('blue')} / {self.name('green')} behind HAProxy "
            f"{self.cfg.bind} (runtime API {self.cfg.socket})"
        )

    def _container(self, colour: str) -> Any | None:
        import docker.errors

        try:
            return self.client.containers.get(self.name(colour))
        except docker.errors.NotFound:
            return None
        except Exception as err:
            raise EngineError(f"docker engine error: {short_error(err)}") from None

    # ---- state -----------------------------------------------------------------------
    def check(self) -> None:
        """HAProxy's socket answers and knows both servers."""
        try:
            servers = haproxy_servers_of(self.runtime.stat())
        except ProxyError as err:
            raise ProxyError(f"{err}; traffic was not changed") from None
        missing = [c for c in COLOURS if c not in servers]
        if missing:
            raise ProxyError(
                f"HAProxy at {self.cfg.socket} has no server {', '.join(missing)} in backend "
                "app: it was not started from [production.haproxy] (`invoke deploy.proxy --start`)"
            )

    def colours(self) -> dict[str, ColourState]:
        """Containers and weights as they are now."""
        out = {}
        for colour in COLOURS:
            box = self._container(colour)
            running = box is not None and box.status in ("running", "restarting")
            labels = (box.labels or {}) if box is not None else {}
            out[colour] = ColourState(
                colour=colour,
                running=running,
                version=labels.get(f"{LABEL}.version", ""),
                image=labels.get(f"{LABEL}.image", ""),
                weight=self.runtime.weight(colour),
            )
        return out

    # ---- acting ----------------------------------------------------------------------
    def start(self, colour: str, release: Release) -> None:
        """Pull the pinned image, replace `colour`'s container, start it (weight 0)."""
        if self.runtime.weight(colour) != 0:
            raise ProxyError(f"refusing to replace {colour}: it still takes traffic")
        old = self._container(colour)
        try:
            repo, _, digest = release.image.partition("@")
            self.client.images.pull(repo, tag=digest or None)
            if old is not None:
                old.remove(force=True)
            env = {**release.env, "BIND_ADDR": f"{self.cfg.host}:{self.cfg.ports[colour]}"}
            self.client.containers.run(
                release.image,
                name=self.name(colour),
                detach=True,
                network_mode="host",
                environment=env,
                labels={
                    f"{LABEL}.colour": colour,
                    f"{LABEL}.version": release.version,
                    f"{LABEL}.image": release.image,
                    f"{LABEL}.revision": release.revision,
                },
                restart_policy={"Name": "unless-stopped"},
            )
        except Exception as err:
            raise EngineError(
                f"cannot start {colour} ({release.version}): {short_error(err)}"
            ) from None

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Set both weights (the one being lowered first, so the sum never exceeds 100
        on the way), then read them back."""
        before = {c: self.runtime.weight(c) for c in COLOURS}
        order = sorted(COLOURS, key=lambda c: weights[c] - before[c])
        done: list[str] = []
        for colour in order:
            try:
                if weights[colour] > 0:
                    self.runtime.set_state(colour, "ready")
                self.runtime.set_weight(colour, weights[colour])
            except ProxyError as err:
                if not done:
                    raise  # nothing was set: the traffic is as it was
                changed = ", ".join(f"{c} {before[c]} -> {weights[c]}" for c in done)
                raise ProxyError(
                    f"traffic partly changed: {changed} was set, then setting {colour} to "
                    f"{weights[colour]} failed ({err}); the split is unknown until HAProxy "
                    "answers again"
                ) from None
            done.append(colour)
        got = {c: self.runtime.weight(c) for c in COLOURS}
        if got != dict(weights):
            raise ProxyError(f"HAProxy reports weights {got} after setting {dict(weights)}")

    def drain(self, colour: str, timeout: float) -> int:
        """Wait until HAProxy has no open session on `colour` (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            row = haproxy_servers_of(self.runtime.stat()).get(colour, {})
            left = int(row.get("scur") or 0)
            if left == 0 or time.monotonic() >= deadline:
                return left
            time.sleep(0.1)

    def stop(self, colour: str, timeout: float) -> None:
        """Put the server in maintenance, stop the container (kept, with its logs)."""
        with contextlib.suppress(ProxyError):
            self.runtime.set_state(colour, "maint")
        box = self._container(colour)
        if box is None:
            return
        try:
            box.stop(timeout=int(timeout))
        except Exception as err:
            raise EngineError(f"cannot stop {colour}: {short_error(err)}") from None

    # ---- observing -------------------------------------------------------------------
    def health(self, colour: str, timeout: float) -> Probe:
        """GET /health on the colour itself."""
        return probe_health(self.url(colour), timeout)

    def _metrics_text(self, colour: str, timeout: float) -> str | None:
        import requests

        try:
            resp = requests.get(f"{self.url(colour)}/metrics", timeout=timeout)
        except requests.RequestException:
            return None
        return resp.text if resp.status_code == 200 else None

    def counters(self, colour: str, at: float, timeout: float) -> Counters | None:
        """The colour's /metrics plus HAProxy's counters of its server."""
        row = haproxy_servers_of(self.runtime.stat()).get(colour, {})
        text = self._metrics_text(colour, timeout)
        base = from_prometheus(text, at) if text is not None else Counters(at=at)
        if text is None and not row:
            return None
        return with_proxy(base, row)

    def logs(self, colour: str, lines: int) -> str:
        """The container's last log lines."""
        box = self._container(colour)
        if box is None:
            return ""
        with contextlib.suppress(Exception):
            return bytes(box.logs(tail=lines, timestamps=True)).decode(errors="replace")
        return ""

    def raw_metrics(self, colour: str, timeout: float) -> str:
        """/metrics text and HAProxy's stat row of the colour."""
        text = self._metrics_text(colour, timeout) or "(no /metrics answer)\n"
        with contextlib.suppress(ProxyError):
            row = haproxy_servers_of(self.runtime.stat()).get(colour, {})
            text += "\n# HAProxy show stat\n" + "\n".join(f"# {k}={v}" for k, v in row.items())
        return text
