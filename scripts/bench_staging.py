"""Time a staging deploy on this machine against the specification's budgets.

    python3 scripts/bench_staging.py [--runs 2] [--manifest PATH]

Starts a throwaway SSH server and registry on loopback, then runs `invoke deploy.staging`
against localhost: first onto an empty host (Postgres initialises), then again (the service
container replaced: the usual redeploy). Prints per phase: image build from the
already-released binary, push, roll-out, until healthy, smoke, e2e, and the totals
against the staging budget (5 min: build to healthy and smoke) and the e2e budget
(10 min). Everything it started is removed at the end. Needs a release manifest
(`invoke release --tag vX.Y.Z --no-publish`); without one it makes one (--allow-dirty).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from e2e.deploy.cleanup import compose_down, remove_images  # noqa: E402
from e2e.deploy.sshd import Sshd, free_port  # noqa: E402

from ci.settings import load  # noqa: E402
from deploy.config import RegistryTarget  # noqa: E402
from deploy.registry import DistributionRegistry, LocalRegistry  # noqa: E402

PHASES = ("plan", "build", "push", "deploy", "health", "smoke", "e2e")


def ensure_manifest(given: str, out: Path) -> Path:
    if given:
        return Path(given).resolve()
    default = load(ROOT).out_dir / "release" / "manifest.json"
    if default.is_file():
        return default
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    env = {**os.environ, "CIPIPE_OUTPUT_DIR": str(out)}
    cmd = [sys.executable, "-m", "invoke", "release", "--tag", f"v{version}", "--no-publish"]
    subprocess.run([*cmd, "--allow-dirty"], cwd=ROOT, env=env, check=True)
    return out / "release" / "manifest.json"


def deploy(env: dict[str, str], manifest: Path, out: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "invoke", "deploy.staging", "--manifest", str(manifest)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"deploy failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    result = json.loads((out / "staging.json").read_text())
    times = {c["name"]: float(c["duration_s"]) for c in result["checks"]}
    times["total"] = float(result["duration_s"])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=2, help="deploys (the first onto an empty host)"
    )
    parser.add_argument("--manifest", default="", help="release manifest to promote")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-staging-") as tmp:
        root = Path(tmp)
        manifest = ensure_manifest(args.manifest, root / "release-out")
        sshd = Sshd(root / "sshd").start()
        address = f"127.0.0.1:{free_port()}"
        registry = LocalRegistry(address, root / "registry")
        registry.start_daemon(DistributionRegistry(RegistryTarget(address, "", None, False, root)))
        project = f"bench{uuid.uuid4().hex[:8]}"
        out = root / "out"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
        env.pop("SLACK_WEBHOOK_URL", None)
        env.update(
            CIPIPE_OUTPUT_DIR=str(out),
            CIPIPE_HISTORY__PATH=str(root / "history.sqlite3"),
            CIPIPE_STAGING__HOST="127.0.0.1",
            CIPIPE_STAGING__SSH_PORT=str(sshd.port),
            CIPIPE_STAGING__USER=sshd.user,
            CIPIPE_STAGING__SSH_KEY=str(sshd.client_key),
            CIPIPE_STAGING__KNOWN_HOSTS=str(sshd.known_hosts),
            CIPIPE_STAGING__REMOTE_DIR=str(root / "remote"),
            CIPIPE_STAGING__PROJECT=project,
            CIPIPE_STAGING__REGISTRY=address,
            CIPIPE_STAGING__PORT=str(free_port()),
            CIPIPE_STAGING__BIND="127.0.0.1",
        )
        rows: list[tuple[str, dict[str, float]]] = []
        try:
            for i in range(args.runs):
                label = "empty host" if i == 0 else f"redeploy {i}"
                # a changed service environment: the service container is replaced, as
                # by a new release (the same binary gives the same image digest)
                env["CIPIPE_STAGING__SERVICE_ENV"] = f"BENCH_RUN={i}"
                rows.append((label, deploy(env, manifest, out)))
        finally:
            compose_down(project)
            registry.stop_daemon()
            sshd.stop()
            remove_images(f"{address}/")
    print(f"{'run':<12}" + "".join(f"{p:>8}" for p in PHASES) + f"{'to healthy':>12}{'total':>8}")
    for label, t in rows:
        healthy = sum(t.get(p, 0.0) for p in ("build", "push", "deploy", "health"))
        cells = "".join(f"{t.get(p, 0.0):>8.1f}" for p in PHASES)
        print(f"{label:<12}{cells}{healthy:>12.1f}{t['total']:>8.1f}")
    worst = max(rows, key=lambda row: row[1]["total"])[1]
    staging = worst["total"] - worst.get("e2e", 0.0)
    print(
        f"staging (plan to smoke): {staging:.1f}s of the 300s budget; "
        f"e2e: {worst.get('e2e', 0.0):.1f}s of the 600s budget (seconds; worst run)"
    )


if __name__ == "__main__":
    main()
