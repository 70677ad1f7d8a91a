"""The service under load: the release binary on real Postgres and Redis (provisioned as
the integration stage does), on a free port, health-checked, its memory sampled, always
stopped. The load generator is the workspace's own example (`[load] generator`), built
in the same release profile."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ci.cargo import find_crate, metadata
from ci.contract import StageContext
from ci.errors import ServiceError, WorkspaceError
from ci.interrupts import shield
from ci.parsers import json_lines
from ci.runner import stop_group
from ci.services import provision
from ci.services.base import free_port


@dataclass(frozen=True)
class Binaries:
    """The release binary and the load generator, as built for this run."""

    server: Path
    generator: Path


def build(ctx: StageContext, generator: str) -> Binaries:
    """`cargo build --release --locked` of the service binary and the generator example,
    paths read from cargo's JSON messages (no guessing at target dirs)."""
    binary = ctx.settings.top.text("binary")
    crate = find_crate(metadata(ctx), binary)
    args = ["build", "--release", "--locked", "-p", crate.name, "--bin", binary]
    args += ["--example", generator, "--message-format=json-render-diagnostics"]
    with ctx.runner.group("build (release)"):
        res = ctx.cargo(args, capture=True)
    if not res.ok:
        last = [ln for ln in res.stderr.splitlines() if ln.startswith("error")]
        why = last[0] if last else f"cargo build failed (exit {res.returncode})"
        if f"no example target named `{generator}`" in res.stderr:
            why = (
                f"{crate.name} has no example {generator!r}: the load generator is an example "
                "of the crate that owns the binary ([tool.pipeline.load] generator)"
            )
        raise WorkspaceError(why)
    found: dict[str, Path] = {}
    for msg in json_lines(res.stdout):
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            found[msg["target"]["name"]] = Path(msg["executable"])
    if binary not in found or generator not in found:
        raise WorkspaceError(f"cargo built no executable for {binary} / example {generator}")
    return Binaries(found[binary], found[generator])


@dataclass
class Running:
    """A started service: where it listens, and its memory samples (MB, RSS)."""

    url: str
    port: int
    pid: int
    rss_mb: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0


def _rss(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process, in MB; zeros when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0.0
    values = {
        line.split(":")[0]: float(line.split()[1]) / 1024
        for line in text.splitlines()
        if line.startswith(("VmRSS:", "VmHWM:"))
    }
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll `/health` until 200, the process dies, or `timeout`: ServiceError."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            raise ServiceError(f"the service exited with code {proc.returncode}: {tail}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}"
        except (OSError, ValueError) as err:
            last = str(getattr(err, "reason", err))
        time.sleep(0.1)
    raise ServiceError(f"the service at {url} was not healthy after {timeout:g}s ({last})")


@contextlib.contextmanager
def serve(
    ctx: StageContext,
    server: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[Running]:
    """Provision Postgres + Redis, start `server` on a free port, wait for `/health`, sample
    its memory every 0.25 s; stop everything on the way out (also on Ctrl-C)."""
    say = ctx.runner.say
    log = ctx.artifacts_dir / "service.raw.log"
    with provision(ctx.settings, ["postgres", "redis"], say=say) as services:
        for svc in services.values():
            ctx.runner.redact.add(svc.secrets)
        port = free_port()
        env = {
            **ctx.runner.base_env,
            **{svc.env_var: svc.url for svc in services.values()},
            "BIND_ADDR": f"127.0.0.1:{port}",
            "RUST_LOG": "warn",
            **(extra_env or {}),
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(server)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = Running(f"http://127.0.0.1:{port}", port, proc.pid)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.25):
                now, peak = _rss(proc.pid)
                if now:
                    running.rss_mb.append(now)
                    running.peak_rss_mb = max(running.peak_rss_mb, peak)

        sampler = threading.Thread(target=sample, daemon=True)
        try:
            wait_healthy(running.url, proc, log, startup_timeout)
            say(f"service {server.name} healthy at {running.url} (pid {proc.pid})")
            sampler.start()
            yield running
        finally:
            with shield():
                stop.set()
                _stop(proc)
                # the service's own log, masked, is kept as an artifact
                text = log.read_text(encoding="utf-8", errors="replace")
                (ctx.artifacts_dir / "service.log").write_text(ctx.runner.redact(text))
                log.unlink(missing_ok=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_group(proc, grace=15, signum=signal.SIGTERM)  # the service drains on SIGTERM


def generate(
    ctx: StageContext, generator: Path, running: Running, rate: float, seconds: float, conns: int
) -> str:
    """Run the load generator once; its raw stdout (the `--json` line) for the parser."""
    argv = [str(generator), f"127.0.0.1:{running.port}", f"{rate:g}", f"{seconds:g}"]
    argv += [str(conns), "--json"]
    res = ctx.runner.run(argv, capture=True, timeout=seconds + 60)
    if res.timed_out:
        raise ServiceError(f"the load generator did not finish within {seconds + 60:g}s")
    if not res.stdout.strip():
        raise ServiceError(
            f"the load generator printed no result (exit {res.returncode}): "
            + (res.stderr.strip().splitlines() or ["no output"])[-1]
        )
    ctx.runner.log_only(json.dumps({"rate": rate, "seconds": seconds, "raw": res.stdout}))
    return res.stdout
