"""The Kubernetes backend: deploy/k8s/ rendered for a colour and applied with kubectl
(argument lists through the Runner; the manifests go through a temp file, never argv).
The split is the HTTPRoute's two backend weights (`kubectl patch --type=merge`);
health and metrics are read through the API server's service proxy
(`kubectl get --raw /api/v1/namespaces/N/services/S:P/proxy/health`), so the
controller needs no network path to the pods. What the Gateway implementation itself
saw (its own 5xx, timeouts) is implementation-specific and not read: the error rate is
the service's."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Any

import yaml

from deploy.errors import DeployError
from deploy.health import Probe, summarize
from deploy.rollout.backend import ColourState, Release
from deploy.rollout.config import COLOURS, KubeConfig
from deploy.rollout.metrics import Counters, from_prometheus

K8S_DIR = Path(__file__).resolve().parent.parent / "k8s"
SECRET_KEYS = ("DATABASE_URL", "REDIS_URL")  # from the cluster's Secret, never rendered


class KubeError(DeployError):
    """kubectl failed: the cluster is unreachable or refused a change."""

    exit_code = 27


def render(template: str, values: Mapping[str, object]) -> list[dict[str, Any]]:
    """deploy/k8s/<template> with `values` substituted, as Kubernetes objects."""
    text = Template((K8S_DIR / template).read_text(encoding="utf-8")).substitute(
        {k: str(v) for k, v in values.items()}
    )
    return [doc for doc in yaml.safe_load_all(text) if doc]


def values(
    cfg: KubeConfig, colour: str, release: Release | None, weights: Mapping[str, int] | None = None
) -> dict[str, object]:
    """The placeholders of the templates."""
    w = weights or {"blue": 100, "green": 0}
    return {
        "name": cfg.name,
        "namespace": cfg.namespace,
        "colour": colour,
        "version": release.version if release else "",
        "image": release.image if release else "",
        "replicas": cfg.replicas,
        "port": cfg.port,
        "secret": cfg.secret,
        "gateway": cfg.gateway,
        "gateway_namespace": cfg.gateway_namespace,
        "blue_weight": w.get("blue", 0),
        "green_weight": w.get("green", 0),
    }


def colour_objects(cfg: KubeConfig, colour: str, release: Release) -> list[dict[str, Any]]:
    """A colour's Deployment (with the release's non-secret env) and Service."""
    objs = render("deployment.yaml", values(cfg, colour, release))
    extra = [
        {"name": k, "value": v} for k, v in sorted(release.env.items()) if k not in SECRET_KEYS
    ]
    for obj in objs:
        for container in obj["spec"]["template"]["spec"]["containers"]:
            container["env"] = [*container.get("env", []), *extra]
    return objs + render("service.yaml", values(cfg, colour, release))


def weight_patch(weights: Mapping[str, int], cfg: KubeConfig) -> dict[str, Any]:
    """The merge patch setting the HTTPRoute's backend weights."""
    route = render("httproute.yaml", values(cfg, "blue", None, weights))[0]
    return {"spec": {"rules": route["spec"]["rules"]}}


def add(a: Counters, b: Counters) -> Counters:
    """Two pods' counters as one colour's."""
    buckets = dict(a.buckets)
    for bound, count in b.buckets:
        buckets[bound] = buckets.get(bound, 0.0) + count
    return Counters(
        at=a.at,
        requests=a.requests + b.requests,
        errors=a.errors + b.errors,
        buckets=tuple(sorted(buckets.items())),
        latency_sum=a.latency_sum + b.latency_sum,
    )


class Kubernetes:
    """Blue and green Deployments behind a weighted HTTPRoute."""

    def __init__(self, cfg: KubeConfig, runner: Any) -> None:
        self.cfg = cfg
        self.runner = runner

    def _kubectl(self, *args: str, check: bool = True, echo: bool = True) -> Any:
        argv = [self.cfg.kubectl]
        if self.cfg.context:
            argv += ["--context", self.cfg.context]
        argv += ["--namespace", self.cfg.namespace, "--request-timeout", "10s", *args]
        res = self.runner.run(argv, capture=True, echo_output=False)
        if check and not res.ok:
            last = res.stderr.strip() or res.stdout.strip() or f"exit {res.returncode}"
            raise KubeError(f"kubectl {args[0]} failed: {last.splitlines()[-1][:200]}")
        return res

    def _apply(self, objs: list[dict[str, Any]]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="rollout-") as fh:
            yaml.safe_dump_all(objs, fh, sort_keys=False)
            fh.flush()
            self._kubectl("apply", "-f", fh.name)

    def describe(self) -> str:
        """The plan's line."""
        return (
            f"Deployments {self.cfg.name}-blue/-green in {self.cfg.namespace}, "
            f"HTTPRoute {self.cfg.name} on Gateway {self.cfg.gateway}"
        )

    def check(self) -> None:
        """The cluster answers and the HTTPRoute exists."""
        self._kubectl("get", "httproute", self.cfg.name, "-o", "name")

    def _route_weights(self) -> dict[str, int]:
        res = self._kubectl("get", "httproute", self.cfg.name, "-o", "json", echo=False)
        refs = json.loads(res.stdout)["spec"]["rules"][0]["backendRefs"]
        out = {c: 0 for c in COLOURS}
        for ref in refs:
            for c in COLOURS:
                if ref.get("name") == f"{self.cfg.name}-{c}":
                    out[c] = int(ref.get("weight", 1))
        return out

    def colours(self) -> dict[str, ColourState]:
        """Deployments' readiness and the route's weights."""
        weights = self._route_weights()
        out = {}
        for c in COLOURS:
            res = self._kubectl(
                "get", "deployment", f"{self.cfg.name}-{c}", "-o", "json", check=False, echo=False
            )
            data = json.loads(res.stdout) if res.ok and res.stdout.strip() else {}
            ready = int((data.get("status") or {}).get("readyReplicas") or 0)
            meta = data.get("metadata") or {}
            out[c] = ColourState(
                c,
                ready > 0,
                (meta.get("labels") or {}).get("app.kubernetes.io/version", ""),
                (meta.get("annotations") or {}).get("io.pipeline.production/image", ""),
                weights[c],
            )
        return out

    def start(self, colour: str, release: Release) -> None:
        """Apply the colour's Deployment and Service; wait for the rollout."""
        self._apply(colour_objects(self.cfg, colour, release))
        self._kubectl(
            "scale", "deployment", f"{self.cfg.name}-{colour}", f"--replicas={self.cfg.replicas}"
        )
        self._kubectl("rollout", "status", f"deployment/{self.cfg.name}-{colour}", "--timeout=300s")

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Patch the HTTPRoute's two weights; read them back."""
        patch = json.dumps(weight_patch(weights, self.cfg))
        self._kubectl("patch", "httproute", self.cfg.name, "--type=merge", "-p", patch)
        got = self._route_weights()
        if got != dict(weights):
            raise KubeError(f"the HTTPRoute reports weights {got} after setting {dict(weights)}")

    def drain(self, colour: str, timeout: float) -> int:
        """The Gateway drains a backend whose weight is 0 by itself; nothing to count."""
        del colour, timeout
        return 0

    def stop(self, colour: str, timeout: float) -> None:
        """Scale the colour to 0 (its Deployment and logs stay)."""
        del timeout
        self._kubectl("scale", "deployment", f"{self.cfg.name}-{colour}", "--replicas=0")

    def _raw(self, colour: str, path: str) -> Any:
        svc = f"{self.cfg.name}-{colour}:{self.cfg.port}"
        url = f"/api/v1/namespaces/{self.cfg.namespace}/services/{svc}/proxy{path}"
        return self._kubectl("get", "--raw", url, check=False, echo=False)

    def health(self, colour: str, timeout: float) -> Probe:
        """/health through the API server's service proxy."""
        del timeout
        res = self._raw(colour, "/health")
        if res.ok:
            return Probe(200, summarize(200, res.stdout))
        return Probe(503, (res.stderr.strip() or "no answer").splitlines()[-1][:120])

    def _pods(self, colour: str) -> list[str]:
        selector = f"app.kubernetes.io/name={self.cfg.name},io.pipeline.production/colour={colour}"
        res = self._kubectl(
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={.items[*].metadata.name}",
            check=False,
            echo=False,
        )
        return res.stdout.split() if res.ok else []

    def counters(self, colour: str, at: float, timeout: float) -> Counters | None:
        """The colour's counters: every pod's /metrics (pod proxy), summed. A pod that
        restarted counts from zero again (metrics.sample treats a drop as a reset)."""
        del timeout
        ns = self.cfg.namespace
        total: Counters | None = None
        for pod in self._pods(colour):
            url = f"/api/v1/namespaces/{ns}/pods/{pod}:{self.cfg.port}/proxy/metrics"
            res = self._kubectl("get", "--raw", url, check=False, echo=False)
            if res.ok:
                one = from_prometheus(res.stdout, at)
                total = one if total is None else add(total, one)
        return total

    def logs(self, colour: str, lines: int) -> str:
        """`kubectl logs` of the colour's Deployment."""
        res = self._kubectl(
            "logs",
            f"deployment/{self.cfg.name}-{colour}",
            f"--tail={lines}",
            "--all-containers",
            "--timestamps",
            check=False,
            echo=False,
        )
        return str(res.stdout)

    def raw_metrics(self, colour: str, timeout: float) -> str:
        """The /metrics text."""
        del timeout
        res = self._raw(colour, "/metrics")
        return str(res.stdout) if res.ok else "(no /metrics answer)\n"
