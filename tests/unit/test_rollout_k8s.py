"""The Kubernetes backend, at the level this machine allows (no cluster here): the
manifests in deploy/k8s/ validated offline against the official schemas (Kubernetes'
OpenAPI schemas as kubernetes-validate ships them, strict: unknown fields rejected; the
Gateway API HTTPRoute CRD's openAPIV3Schema, vendored in deploy/k8s/schemas/), and the
kubectl calls the backend makes, against a scripted kubectl."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from ci.settings import load
from deploy.rollout import config, k8s
from deploy.rollout.backend import Release

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.30.0"
HTTPROUTE = json.loads((ROOT / "deploy/k8s/schemas/httproute.json").read_text())
PASSWORD = secrets.token_hex(8)  # made at run time: nothing secret-looking is committed
RELEASE = Release(
    "1.2.3",
    "registry.example:5000/trading-system@sha256:" + "a" * 64,
    "",
    {"DATABASE_URL": f"postgres://u:{PASSWORD}@db/x", "REDIS_URL": "redis://r", "RUST_LOG": "info"},
)


def kube() -> config.KubeConfig:
    return config.load(load(ROOT, {})).kube


def validate(obj: dict) -> None:
    if obj["apiVersion"].startswith("gateway.networking.k8s.io/"):
        jsonschema.validate(obj, HTTPROUTE)
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("colour", ["blue", "green"])
def test_colour_manifests_are_valid_kubernetes_objects(colour: str) -> None:
    objs = k8s.colour_objects(kube(), colour, RELEASE)
    assert [o["kind"] for o in objs] == ["Deployment", "Service"]
    for obj in objs:
        validate(obj)
    dep, svc = objs
    assert dep["metadata"]["name"] == svc["metadata"]["name"] == f"trading-{colour}"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == RELEASE.image
    names = {e["name"] for e in container["env"]}
    assert "RUST_LOG" in names and not names & {"DATABASE_URL", "REDIS_URL"}  # from the Secret
    assert container["envFrom"] == [{"secretRef": {"name": "trading-production"}}]
    assert PASSWORD not in json.dumps(objs)


@pytest.mark.parametrize(
    "weights", [{"blue": 90, "green": 10}, {"blue": 50, "green": 50}, {"blue": 0, "green": 100}]
)
def test_the_httproute_splits_by_backend_weight(weights: dict) -> None:
    route = k8s.render("httproute.yaml", k8s.values(kube(), "blue", None, weights))[0]
    validate(route)
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert {r["name"]: r["weight"] for r in refs} == {
        "trading-blue": weights["blue"],
        "trading-green": weights["green"],
    }
    patch = k8s.weight_patch(weights, kube())
    assert patch["spec"]["rules"] == route["spec"]["rules"]


def test_schemas_catch_broken_manifests() -> None:
    dep = k8s.colour_objects(kube(), "blue", RELEASE)[0]
    dep["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(dep)
    svc = k8s.colour_objects(kube(), "blue", RELEASE)[1]
    svc["spec"]["portz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(svc)  # strict: an unknown field is an error
    route = k8s.render("httproute.yaml", k8s.values(kube(), "blue", None))[0]
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 2_000_000
    with pytest.raises(jsonschema.ValidationError):
        validate(route)  # weight is 0..1000000
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(jsonschema.ValidationError):
        validate(route)


@dataclass
class Res:
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass
class Kubectl:
    """Answers kubectl like a cluster holding the route and the deployments."""

    weights: dict = field(default_factory=lambda: {"blue": 100, "green": 0})
    calls: list = field(default_factory=list)
    applied: list = field(default_factory=list)

    def say(self, text: str) -> None:
        pass

    def run(self, argv: list, **kw: object) -> Res:
        args = argv[argv.index("10s") + 1 :]
        self.calls.append(args)
        if args[:2] == ["apply", "-f"]:
            import yaml

            self.applied += list(yaml.safe_load_all(Path(args[2]).read_text()))
            return Res()
        if args[:2] == ["get", "httproute"] and "json" in args:
            refs = [
                {"name": f"trading-{c}", "port": 8080, "weight": w} for c, w in self.weights.items()
            ]
            return Res(stdout=json.dumps({"spec": {"rules": [{"backendRefs": refs}]}}))
        if args[:2] == ["patch", "httproute"]:
            patch = json.loads(args[args.index("-p") + 1])
            for ref in patch["spec"]["rules"][0]["backendRefs"]:
                self.weights[ref["name"].split("-")[-1]] = ref["weight"]
            return Res()
        if args[:2] == ["get", "pods"]:
            return Res(stdout="trading-green-a trading-green-b")
        if args[:2] == ["get", "--raw"]:
            if args[2].endswith("/health"):
                return Res(stdout='{"status":"ok"}')
            return Res(stdout='http_requests_total{route="/orders",method="POST",status="201"} 5\n')
        return Res()


def test_backend_drives_kubectl() -> None:
    fake = Kubectl()
    backend = k8s.Kubernetes(kube(), fake)
    backend.check()
    backend.start("green", RELEASE)
    assert [o["kind"] for o in fake.applied] == ["Deployment", "Service"]
    assert ["rollout", "status", "deployment/trading-green", "--timeout=300s"] in fake.calls
    backend.set_weights({"blue": 90, "green": 10})
    assert fake.weights == {"blue": 90, "green": 10}
    assert backend.health("green", 1).healthy
    counters = backend.counters("green", 1.0, 1)
    assert counters is not None and counters.requests == 10  # two pods, summed
    backend.stop("blue", 5)
    assert ["scale", "deployment", "trading-blue", "--replicas=0"] in fake.calls
    for call in fake.calls:
        assert PASSWORD not in " ".join(call)  # the database URL never reaches argv
