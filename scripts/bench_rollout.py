"""Measure the production rollout on this machine: zero-downtime, rollback time, error
budget, and the relative check's false-abort rate.

    python3 scripts/bench_rollout.py [--runs 5] [--rate 200] [--binary PATH]

Starts a local registry, Postgres and Redis, HAProxy (`invoke deploy.proxy`), publishes
the service image under two versions, then, under a steady load on HAProxy's loopback
port:
  1. the first deployment (blue, 100%);
  2. `--runs` rollouts of an IDENTICAL version (blue <-> green): each must complete;
     an abort is a false abort (the relative check's false-abort rate);
  3. one rollout with TS_FAULT_ERROR_RATE=0.2 on the new colour: the rollback time
     (trigger -> all traffic on the old colour, from the controller's timeline and from
     the load: the last request the faulty colour answered) and the failed requests;
  4. one rollout 3x slower (TS_FAULT_LATENCY_MS) but under the p99 limit: must abort
     through the relative check.
Prints one line per rollout and a summary. Everything it started is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from e2e.deploy.production_env import (  # noqa: E402
    Load,
    Production,
    environment,
    release_from_binary,
)


def rollout(prod: Production, load: Load, version: str, *env: str) -> dict:
    args = ["deploy.production", "--version", version]
    for pair in env:
        args += ["--env", pair]
    t0 = time.monotonic()
    r = prod.invoke(*args, timeout=900)
    t1 = time.monotonic()
    state = prod.rollout_state()
    failed = load.failed(t0, t1)
    served = [h for h in load.hits if t0 <= h.t <= t1]
    new = state["new"]
    trig = next((e for e in state["events"] if e["event"].startswith("TRIGGER")), None)
    back = next((e for e in state["events"] if e["event"].startswith("all traffic on")), None)
    return {
        "version": version,
        "code": r.returncode,
        "phase": state["phase"],
        "trigger": state.get("trigger", ""),
        "requests": len(served),
        "failed": len(failed),
        "new_share": sum(h.served_by == new for h in served) / max(1, len(served)),
        "switch_ms": (back["t"] - trig["t"]) * 1000 if trig and back else None,
        "seconds": t1 - t0,
        "line": (r.stdout + r.stderr).strip().splitlines()[-1:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--binary", default="")
    args = parser.parse_args()
    import docker

    binary = Path(args.binary or "/root/.cache/trading-pipeline/target/release/trading-system")
    if not binary.is_file():
        print(f"error: no service binary at {binary}: cargo build --release -p trading-system")
        return 2
    client = docker.from_env(timeout=120)
    release = release_from_binary(binary)
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp,
        environment(Path(tmp), client) as prod,
    ):
        for v in ("1.0.0", "1.0.1"):
            prod.publish(client, release, v)
            prod.approve(v, "alice@example.com", "bob@example.com")
        first = prod.invoke("deploy.production", "--version", "1.0.0", timeout=600)
        print(f"first deployment: exit {first.returncode}")
        load = Load(prod.port, rate=args.rate, max_seconds=3600).start()
        try:
            time.sleep(2)
            for i in range(args.runs):
                res = rollout(prod, load, "1.0.1" if i % 2 == 0 else "1.0.0")
                results.append(("identical", res))
                print(
                    f"identical #{i + 1}: {res['phase']} {res['trigger']} "
                    f"{res['requests']} requests, {res['failed']} failed, "
                    f"{res['seconds']:.1f}s"
                )
            faulty_version = "1.0.1" if args.runs % 2 == 0 else "1.0.0"
            res = rollout(prod, load, faulty_version, "TS_FAULT_ERROR_RATE=0.2")
            results.append(("faulty", res))
            print(
                f"faulty: {res['phase']} {res['trigger']} switch {res['switch_ms']} ms, "
                f"{res['failed']} failed of {res['requests']}"
            )
            slow = rollout(prod, load, faulty_version, "TS_FAULT_LATENCY_MS=2")
            results.append(("slow", slow))
            print(f"3x slower: {slow['phase']} {slow['trigger']}")
        finally:
            load.stop()
        rate = load.rate_achieved()
    identical = [r for kind, r in results if kind == "identical"]
    aborts = sum(r["phase"] != "done" for r in identical)
    summary = {
        "rate_rps": round(rate, 1),
        "identical_runs": len(identical),
        "false_aborts": aborts,
        "false_abort_rate": aborts / max(1, len(identical)),
        "failed_requests_in_healthy_rollouts": sum(r["failed"] for r in identical),
        "requests_in_healthy_rollouts": sum(r["requests"] for r in identical),
        "results": [(k, {x: y for x, y in r.items() if not x.startswith("_")}) for k, r in results],
    }
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
