"""The production rollout for real: HAProxy (Debian's), blue and green containers of the
release image from the registry, Postgres and Redis, a bounded load generator on
HAProxy's loopback port (200 requests/s), the fake GitHub and Slack. Approvals are
SSH-signed by throwaway keys of two people (ssh-keygen; production_env.Production.approve).
The tests of this module share one environment and run in order (each leaves one colour
serving)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fakes.github_api import FakeGitHub
from fakes.github_deployments import add_ref, deployments, issues

from ci.history import open_store
from deploy.release import read_release

from .production_env import Load, environment

V1, V2 = "1.0.0", "1.0.1"
PEOPLE = ("alice@example.com", "bob@example.com")


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory, docker_client, registry: str, manifest: Path):
    if subprocess.run(["which", "haproxy"], capture_output=True).returncode != 0:
        pytest.fail("haproxy is missing: apt-get install haproxy (.ci/setup installs it)")
    with environment(tmp_path_factory.mktemp("production"), docker_client, registry) as p:
        release = read_release(manifest)
        for v in (V1, V2):
            p.publish(docker_client, release, v)
        yield p


def serving(prod, docker_client) -> str:
    """The one colour serving 100% (asserts the environment is consistent)."""
    weights, running = prod.weights(), prod.running(docker_client)
    live = [c for c in weights if weights[c] == 100]
    assert len(live) == 1 and sorted(weights.values()) == [0, 100], weights
    assert running[live[0]], running
    other = "green" if live[0] == "blue" else "blue"
    assert not running[other], f"{other} still runs: {running}"
    return live[0]


@pytest.fixture
def live(prod, docker_client) -> str:
    """A version serving 100%: the module's tests build on each other in order, and a
    test run alone (`-k`) first gets what the ones before it would have left: V1 live."""
    if 100 not in prod.weights().values():
        prod.approve(V1, *PEOPLE)
        r = prod.invoke("deploy.production", "--version", V1)
        assert r.returncode == 0, r.stdout + r.stderr
    return serving(prod, docker_client)


def last_line(r: subprocess.CompletedProcess) -> str:
    return (r.stdout + r.stderr).strip().splitlines()[-1]


def test_refusals_are_one_line_and_touch_nothing(prod, docker_client) -> None:
    before = prod.weights()
    # no approval at all
    r = prod.invoke("deploy.production", "--version", V1)
    assert r.returncode == 28 and "0 of 2 approvals" in last_line(r)
    # the same person (the same key) twice counts once, whatever name the shell gives
    prod.approve(V1, PEOPLE[0])
    again = prod.approve_as(V1, PEOPLE[0])
    assert again.returncode == 28 and "already approved" in last_line(again)
    r = prod.invoke("deploy.production", "--version", V1, DEPLOY_APPROVER=PEOPLE[1])
    assert r.returncode == 28 and "1 of 2 approvals" in last_line(r)
    assert f"signed by {PEOPLE[0]} for deployment" in last_line(r)
    # an unknown version
    r = prod.invoke("deploy.production", "--version", "9.9.9")
    assert r.returncode == 20 and "not in the registry" in last_line(r)
    # HAProxy's socket unreachable
    prod.approve(V1, PEOPLE[1])
    r = prod.invoke(
        "deploy.production",
        "--version",
        V1,
        CIPIPE_PRODUCTION__HAPROXY__SOCKET=str(prod.root / "nowhere.sock"),
    )
    assert r.returncode == 27 and "does not answer" in last_line(r)
    assert "traffic was not changed" in last_line(r)
    for run in (r,):
        assert "Traceback" not in run.stdout + run.stderr
    assert prod.weights() == before
    assert not any(prod.running(docker_client).values())
    with open_store(prod.settings()) as store:
        refused = store.deployments("production")
    assert refused and all(d.details.get("refused") for d in refused)


def test_first_deployment(prod, docker_client) -> None:
    prod.approve(V1, *PEOPLE)
    r = prod.invoke("deploy.production", "--version", V1)
    assert r.returncode == 0, r.stdout + r.stderr
    assert serving(prod, docker_client) == "blue"


def _watch_weights(prod, stop: threading.Event, log: list) -> None:
    while not stop.is_set():
        with contextlib.suppress(Exception):
            log.append((time.monotonic(), prod.weights()))
        time.sleep(0.05)


def test_healthy_rollout_under_load_splits_accurately_with_zero_failures(
    prod, docker_client, live
) -> None:
    prod.approve(V2, *PEOPLE)
    weights_log: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_weights, args=(prod, stop, weights_log))
    with FakeGitHub() as gh:
        for v in (V1, V2):
            add_ref(gh, "acme/trading", f"v{v}")  # the release tags
        load = Load(prod.port, rate=200).start()
        time.sleep(1)
        watcher.start()
        r = prod.invoke(
            "deploy.production",
            "--version",
            V2,
            GITHUB_TOKEN=gh.token,
            GITHUB_REPOSITORY="acme/trading",
            CIPIPE_PRODUCTION__GITHUB_API=gh.url,
        )
        stop.set()
        watcher.join()
        load.stop()
        deps = list(deployments(gh).values())
    assert r.returncode == 0, r.stdout + r.stderr
    assert serving(prod, docker_client) == "green"
    # zero failed requests from the first step to the last, at >= 200 requests/s offered
    assert load.failed() == [], load.failed()[:5]
    assert load.rate_achieved() > 190
    # the split at each step: over >= 500 requests, within 5 points of the set weight
    for pct in (10, 50):
        times = [t for t, w in weights_log if w["green"] == pct]
        assert times, f"never saw green at {pct}%"
        lo, hi = min(times) + 0.3, max(times) - 0.3
        hits = [h for h in load.hits if lo <= h.t <= hi]
        assert len(hits) >= 500, (pct, len(hits))
        share = 100 * sum(h.served_by == "green" for h in hits) / len(hits)
        assert abs(share - pct) <= 5, (pct, share)
    # the ticket: a GitHub deployment, in progress then success
    assert [s["state"] for s in deps[-1]["_statuses"]] == ["in_progress", "success"]
    with open_store(prod.settings()) as store:
        last = store.deployments("production")[-1]
    assert (last.version, last.outcome) == (V2, "succeeded")


def test_faulty_version_rolls_back_at_10_percent(prod, docker_client, live, slack) -> None:
    prod.approve(V1, *PEOPLE)
    live = serving(prod, docker_client)
    new = "blue" if live == "green" else "green"
    with FakeGitHub() as gh:
        for v in (V1, V2):
            add_ref(gh, "acme/trading", f"v{v}")  # the release tags
        load = Load(prod.port, rate=200).start()
        time.sleep(1)
        t0 = time.monotonic()
        r = prod.invoke(
            "deploy.production",
            "--version",
            V1,
            "--env",
            "TS_FAULT_ERROR_RATE=0.2",
            GITHUB_TOKEN=gh.token,
            GITHUB_REPOSITORY="acme/trading",
            CIPIPE_PRODUCTION__GITHUB_API=gh.url,
            SLACK_WEBHOOK_URL=slack.url,
        )
        t1 = time.monotonic()
        load.stop()
        opened = list(issues(gh).values())
        statuses = [s["state"] for s in list(deployments(gh).values())[-1]["_statuses"]]
    assert r.returncode == 24, r.stdout + r.stderr
    # Either error trigger may see the fault first: the absolute rate once its window is
    # full, or the proportion test against the old colour once it has enough requests.
    st = prod.rollout_state()
    assert st["trigger"] in ("error-rate", "relative-errors"), st["trigger"]
    assert st["trigger"] in last_line(r)
    assert serving(prod, docker_client) == live
    assert (st["step"], st["phase"]) == (0, "rolled_back")
    ev = {e["event"].split(" ")[0]: e["t"] for e in st["events"]}
    switch = ev["all"] - ev["TRIGGER"]
    assert switch < 2.0
    # failures bounded by the 10% exposure: only the new colour failed, at most ~10% x 20%
    window = [h for h in load.hits if t0 <= h.t <= t1]
    failed = load.failed(t0, t1)
    assert failed and all(h.served_by in (new, "") for h in failed)
    assert len(failed) <= 0.10 * len(window)
    # incident report, issue with the checklist, statuses, Slack, recovery recorded
    found = list((prod.out / "production").glob(f"incident-{st['id']}/report.md"))
    assert found and st["trigger"] in found[0].read_text()
    assert (found[0].parent / f"{new}.log").exists()
    assert opened and "Post-mortem checklist" in opened[-1]["body"]
    assert statuses == ["in_progress", "failure"]
    assert any("ROLLBACK" in m for m in slack.messages)
    with open_store(prod.settings()) as store:
        dep = store.deployments("production")[-1]
    assert dep.outcome == "rolled_back" and dep.recovered_at is not None
    assert dep.time_to_restore is not None and dep.time_to_restore.total_seconds() < 2
    # the planted credentials appear nowhere
    text = (
        r.stdout
        + r.stderr
        + "".join(p.read_text(errors="replace") for p in prod.out.rglob("*") if p.is_file())
    )
    for secret in (gh.token, slack.secret, prod.database_url.split("@")[0].split(":")[-1]):
        assert secret not in text
    print(
        f"rollback: trigger -> 100% on {live} in {switch * 1000:.1f} ms; "
        f"{len(failed)} failed of {len(window)} requests"
    )


@pytest.mark.parametrize(
    ("fault", "trigger"),
    [("TS_FAULT_LATENCY_MS=80", "latency"), ("TS_FAULT_UNHEALTHY=1", "health")],
)
def test_latency_and_health_faults_trip_their_own_trigger(
    prod, docker_client, live, fault, trigger
) -> None:
    live = serving(prod, docker_client)
    prod.approve(V1, *PEOPLE)
    load = Load(prod.port, rate=100).start()
    r = prod.invoke(
        "deploy.production", "--version", V1, "--env", fault, CIPIPE_PRODUCTION__HEALTH_TIMEOUT="5"
    )
    load.stop()
    assert r.returncode == 24, r.stdout + r.stderr
    st = prod.rollout_state()
    assert st["trigger"] == trigger
    report = prod.out / "production" / f"incident-{st['id']}" / "report.md"
    assert f"trigger: **{trigger}**" in report.read_text()
    assert serving(prod, docker_client) == live


def test_a_brief_stall_shorter_than_the_windows_does_not_trip(prod, docker_client, live) -> None:
    # The latency trigger judges the p99 of ALL the window's requests: a stall trips it
    # when the stalled requests are more than 1% of the window's, not otherwise. Here
    # ~15 requests stall 0.2 s inside a 30 s window of ~2,400 (at 4 s, the FAST window,
    # a 1 s stall is a quarter of the window's requests: a real p99 breach).
    live = serving(prod, docker_client)
    new = "blue" if live == "green" else "green"
    version = V2 if live == "blue" else V1
    prod.approve(version, *PEOPLE)
    load = Load(prod.port, rate=150).start()
    proc = prod.spawn(
        "deploy.production",
        "--version",
        version,
        CIPIPE_PRODUCTION__BAKE="10",
        CIPIPE_PRODUCTION__P99_WINDOW="30",
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and prod.weights().get(new) != 50:
            time.sleep(0.1)
        box = docker_client.containers.get(f"{prod.name}-{new}")
        box.pause()  # every request to it waits: a latency spike of ~0.2 s
        time.sleep(0.2)
        box.unpause()
        out, _ = proc.communicate(timeout=300)
    finally:
        load.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert serving(prod, docker_client) == new


def test_a_3x_slower_version_is_caught_by_the_relative_check(prod, docker_client, live) -> None:
    live = serving(prod, docker_client)
    version = V2 if live == "blue" else V1
    prod.approve(version, *PEOPLE)
    load = Load(prod.port, rate=200).start()
    r = prod.invoke("deploy.production", "--version", version, "--env", "TS_FAULT_LATENCY_MS=2")
    load.stop()
    assert r.returncode == 24, r.stdout + r.stderr
    st = prod.rollout_state()
    assert st["trigger"] == "relative-latency", st["reason"]
    assert "p99 over" not in st["reason"]  # under the absolute limit
    assert serving(prod, docker_client) == live


def test_sigkill_between_steps_then_rerun_ends_consistent(prod, docker_client, live) -> None:
    live = serving(prod, docker_client)
    new = "blue" if live == "green" else "green"
    version = V2 if live == "blue" else V1
    prod.approve(version, *PEOPLE)
    proc = prod.spawn("deploy.production", "--version", version)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and prod.weights().get(new) != 10:
        time.sleep(0.05)
    time.sleep(1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert prod.weights()[new] == 10  # killed mid-rollout: the split is left behind
    assert prod.rollout_state()["phase"] == "shifting"
    load = Load(prod.port, rate=150).start()  # the rerun's rollout needs traffic to judge
    r = prod.invoke("deploy.production", "--version", version)
    load.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unfinished rollout" in r.stdout
    assert serving(prod, docker_client) == new


def test_manual_rollback_to_a_version(prod, docker_client, live) -> None:
    live = serving(prod, docker_client)
    r = prod.invoke("rollback", "--to", V1 if live == "green" else V2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert serving(prod, docker_client) != live
    with open_store(prod.settings()) as store:
        assert store.deployments("production")[-1].trigger == "rollback"
