"""How long the reports take: rendering report.html (history read, metrics, page) and the
gate summary over a synthetic history of realistic size, and posting the PR comment
(create, then update) against the local fake GitHub API.

    python3 scripts/bench_report.py [--runs 200]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fakes.github_api import FakeGitHub  # noqa: E402
from fakes.github_issues import open_pull  # noqa: E402

from ci import settings as settings_mod  # noqa: E402
from ci.history import Machine, Measurement, RunInfo, open_store, utc_now  # noqa: E402
from ci.reports.tasks import run_report  # noqa: E402
from ci.result import StageResult, Status, write_result  # noqa: E402

STAGES = (("lint", 60), ("security", 120), ("unit", 120), ("integration", 300))


def seed(env: dict[str, str], runs: int) -> None:
    cfg = settings_mod.load(ROOT, env)
    now = utc_now()
    machine = Machine("bench", "bench")
    with open_store(cfg) as store:
        for i in range(runs):
            at = now - timedelta(hours=runs - i)
            ci = RunInfo(
                "ci",
                f"{i:040x}",
                "main",
                str(i),
                machine,
                at,
                at + timedelta(minutes=9),
                "passed",
                meta={"full": True},
            )
            store.record(
                ci,
                [
                    Measurement("stage", n, b / 3 + i % 7, "s", {"status": "passed"})
                    for n, b in STAGES
                ],
            )
            bench = RunInfo("bench", f"{i:040x}", "main", str(i), machine, at, at, "passed")
            store.record(
                bench,
                [
                    Measurement(
                        "bench.wall",
                        f"bench/{k}",
                        50 + k + i % 5,
                        "ns",
                        {"verdict": "within noise"},
                    )
                    for k in range(12)
                ],
            )
            cov = RunInfo("coverage", f"{i:040x}", "main", str(i), machine, at, at, "passed")
            store.record(cov, [Measurement("coverage", "total", 80 + i % 4, "%")])
            dep = store.start_deployment("production", f"v{i}", "d", trigger="manual", at=at)
            store.finish_deployment(dep, "succeeded", at=at + timedelta(minutes=4))
    for name, budget in STAGES:
        write_result(cfg.out_dir, StageResult(name, Status.PASSED, budget / 4, budget, "ok"))


def timed(func: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="recorded runs of each kind")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "CIPIPE_OUTPUT_DIR": f"{tmp}/out",
            "CIPIPE_HISTORY__PATH": f"{tmp}/history.sqlite3",
        }
        start = time.perf_counter()
        seed(env, args.runs)
        print(
            f"seeded {args.runs} runs of ci, bench, coverage + {args.runs} deployments "
            f"in {time.perf_counter() - start:.2f}s"
        )
        quiet = lambda _line: None  # noqa: E731
        summary = timed(lambda: run_report(ROOT, env=env, say=quiet), args.repeat)
        html = timed(lambda: run_report(ROOT, html=True, env=env, say=quiet), args.repeat)
        size = Path(f"{tmp}/out/report.html").stat().st_size
        print(
            f"invoke report (table + summary.md): median {statistics.median(summary) * 1000:.1f} ms"
        )
        print(
            f"invoke report --html: median {statistics.median(html) * 1000:.1f} ms "
            f"(report.html {size / 1024:.0f} KiB)"
        )
        token = "ghs_" + secrets.token_hex(16)
        with FakeGitHub(token=token) as api:
            open_pull(api, "acme/trading", 7)
            env.update(
                GITHUB_TOKEN=token,
                GITHUB_REPOSITORY="acme/trading",
                GITHUB_REF="refs/pull/7/merge",
                CIPIPE_REPORT__API_URL=api.url,
            )
            first = timed(lambda: run_report(ROOT, comment=True, env=env, say=quiet), 1)[0]
            write_result(Path(f"{tmp}/out"), StageResult("lint", Status.FAILED, 1, 60, "x"))
            update = timed(lambda: run_report(ROOT, comment=True, env=env, say=quiet), 1)[0]
            same = timed(lambda: run_report(ROOT, comment=True, env=env, say=quiet), 1)[0]
        print(
            f"invoke report --comment against the fake API: create {first * 1000:.1f} ms, "
            f"update {update * 1000:.1f} ms, unchanged {same * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
