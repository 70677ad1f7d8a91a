"""The speculative test build of `invoke ci`: while lint runs (its clippy check build
has a target dir of its own), the test binaries the test stages need are built in the
shared target dir, so unit and integration find them ready. A speculative build: when
lint fails (nothing that needs it will run), it is stopped and its work thrown away; it
is always stopped when the flow ends."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Collection
from pathlib import Path

from ci import features
from ci.redact import secret_env_names
from ci.result import StageResult
from ci.runner import stop_group
from ci.settings import Settings

# The stages whose builds it does ahead, and the one whose failure makes it pointless.
TEST_STAGES = ("unit", "integration")
GATE = "lint"


class Prebuild:
    """`cargo test --workspace --no-run --lib --bins --tests`, in the background."""

    def __init__(self, cfg: Settings, env: dict[str, str], log: Path) -> None:
        self.cfg = cfg
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def wanted(cfg: Settings, planned: Collection[str], replayed: Collection[str]) -> bool:
        """Worth it: lint runs and a test stage will run after it."""
        if not cfg.section("cache").flag("prebuild"):
            return False
        runs = [s for s in TEST_STAGES if s in planned and s not in replayed]
        return GATE in planned and GATE not in replayed and bool(runs)

    def start(self) -> None:
        env = {k: v for k, v in self.env.items() if k not in secret_env_names(self.env)}
        env["CARGO_TERM_COLOR"] = "never"
        if self.cfg.cargo_target_dir is not None:
            env["CARGO_TARGET_DIR"] = str(self.cfg.cargo_target_dir)
        if env.get("CI"):
            env.setdefault("CARGO_INCREMENTAL", "0")  # as the stages build
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    *("cargo", "test", "--workspace", "--no-run", "--lib", "--bins", "--tests"),
                    *features.configured(self.cfg).cargo_args(),
                ],
                cwd=self.cfg.workspace,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def on_result(self, result: StageResult) -> None:
        """Executor hook: a red lint makes the build pointless."""
        if result.stage == GATE and not result.status.ok:
            self.stop()

    def stop(self) -> None:
        """Stop the build if it still runs (its partial output is harmless: cargo only
        keeps finished artifacts)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, grace=10, signum=signal.SIGTERM)
