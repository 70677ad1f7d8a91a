"""`invoke deploy.staging`: gather -> plan -> show -> act -> verify.

Act: build the service image from the release binary, push it, write the release's files
on the host, `compose pull && up -d`. Verify: /health within the bound, the running
container's image is the pushed digest, the smoke suite passes. A failure there (or
Ctrl-C) redeploys the last good release and verifies it; the team is told both times.
Then the e2e suite, whose verdict is recorded for the production flow. Every deployment
is recorded in the history store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ci.contract import Clock
from ci.interrupts import shield
from ci.result import Status
from ci.runner import Runner
from deploy import compose, local_images
from deploy.compose import ReleaseFiles, Running, crash_reason, last_log_line, parse_env
from deploy.config import StagingConfig
from deploy.control import control_socket, restart_command
from deploy.errors import DeployError, E2EFailed, ReleaseUnhealthy, RollbackFailed
from deploy.gather import Parts
from deploy.health import probe_health, wait_healthy
from deploy.notify import Message
from deploy.plan import Plan
from deploy.record import utc_now
from deploy.release import ImageName
from deploy.suites import run_suite


@dataclass
class Deployed:
    """What the act phase produced, for the result file and the messages."""

    digest: str = ""
    image: str = ""
    dep_id: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)


class StagingDeploy:
    """One staging deployment over opened parts (see deploy.gather)."""

    def __init__(
        self, cfg: StagingConfig, runner: Runner, parts: Parts, plan: Plan, clock: Clock
    ) -> None:
        self.cfg = cfg
        self.runner = runner
        self.parts = parts
        self.plan = plan
        self.clock = clock
        self.say = runner.say
        self.release = plan.facts.release
        self.image = plan.facts.image
        self.out = Deployed()
        self.restored: Running | None = None

    # ---- act -------------------------------------------------------------------------
    def build_and_push(self) -> None:
        """Build the image on the base (or its local stand-in), push every tag, check the
        registry serves the digest the push reported."""
        eng, facts = self.parts.engine, self.plan.facts
        with self.clock.check("build") as chk:
            base = facts.base or eng.obtain(
                facts.base_public,
                self.cfg.images.local,
                lambda: local_images.runtime_base(self.release.binary, self.runner),
            )
            refs = [self.image.tagged(t) for t in self.release.tags()]
            built = eng.build(self.release, base, refs)
            chk.summary = f"{refs[0]} on {base}"
            self.say(f"built {built.image_id[:19]} as {', '.join(refs)}")
        with self.clock.check("push") as chk:
            auth = self.parts.registry.auth()
            digests = {eng.push(ref, auth, self.image.registry) for ref in refs}
            if len(digests) != 1:
                raise ReleaseUnhealthy(f"the tags of one image got different digests: {digests}")
            digest = digests.pop()
            served = self.parts.registry.digest(self.image.repository, self.release.tags()[0])
            if served != digest:
                raise ReleaseUnhealthy(
                    f"registry {self.image.registry} serves {served} for the tag just pushed "
                    f"as {digest}"
                )
            self.out.digest, self.out.image = digest, self.image.pinned(digest)
            chk.summary = self.out.image
            self.say(f"pushed {self.out.image}")

    def service_image(self, public: str, recipe: Callable[[], local_images.Recipe]) -> str:
        """The image reference the host pulls for a backing service: the public one, or
        the local stand-in pushed to the registry."""
        eng = self.parts.engine
        ref = eng.obtain(public, self.cfg.images.local, recipe)
        if ref == public:
            return public
        name, _, tag = ref.partition(":")
        target = ImageName(self.image.registry, name).tagged(tag or "latest")
        eng.tag(ref, target)
        digest = eng.push(target, self.parts.registry.auth(), self.image.registry)
        return f"{target.rpartition(':')[0]}@{digest}"

    def files(self) -> ReleaseFiles:
        """The release's files, images pinned."""
        postgres = self.service_image(self.cfg.images.postgres, local_images.postgres)
        redis = self.service_image(self.cfg.images.redis, local_images.redis)
        return compose.render(
            image=self.out.image,
            postgres=postgres,
            redis=redis,
            bind=self.cfg.bind,
            port=self.cfg.port,
            version=self.release.version,
            revision=self.release.commit,
            digest=self.out.digest,
            service_env=self.cfg.service_env,
        )

    def roll_out(self, files: ReleaseFiles) -> None:
        """Write the files, pull, start."""
        stack = self.parts.stack
        with self.clock.check("deploy") as chk:
            secrets = parse_env(stack.ensure_secrets())
            self.runner.redact.add(secrets.values())
            stack.write_files(files)
            stack.compose("pull", "--quiet")
            stack.compose("up", "-d", "--remove-orphans")
            chk.summary = f"{self.release.version} up on {self.plan.facts.host}"

    # ---- verify ----------------------------------------------------------------------
    def healthy(self, digest: str) -> str | None:
        """None when /health answers 200 and the container runs `digest`, else why not."""
        stack = self.parts.stack

        def down() -> str | None:
            reason = crash_reason(stack.state())
            if reason:
                last = last_log_line(stack.logs())
                return f"{reason}{': ' + last if last else ''}"
            return None

        health = wait_healthy(
            lambda: probe_health(self.cfg.url, self.cfg.request_timeout),
            timeout=self.cfg.health_timeout,
            down=down,
        )
        self.say(f"health: {health.describe()}")
        if not health.healthy:
            return health.reason
        image_id = stack.state().get("image", "")
        running = stack.repo_digests(image_id) if image_id else []
        if not any(d.endswith(f"@{digest}") for d in running):
            return f"the service runs {image_id[:19] or 'no image'}, not {digest}"
        return None

    def verify(self) -> str | None:
        """Health, digest, smoke: None when the new release passed them all."""
        with self.clock.check("health") as chk:
            why = self.healthy(self.out.digest)
            chk.summary = why or f"200 from {self.cfg.url}/health, running {self.out.digest[:19]}…"
            if why:
                chk.status = Status.FAILED
                return f"health check failed: {why}"
        with self.clock.check("smoke") as chk:
            smoke = run_suite(
                self.runner,
                self.parts.log.settings.out_dir,
                self.cfg.url,
                smoke=True,
                version=self.release.reported_version,
            )
            chk.summary = smoke.summary
            if not smoke.passed:
                chk.status = Status.FAILED
                return f"smoke tests failed: {smoke.summary}"
        return None

    # ---- recover ---------------------------------------------------------------------
    def notify(self, message: Message) -> None:
        """Send, and say what happened (a failed notification is a warning)."""
        problem = self.parts.notifier.send(message)
        self.say(f"notify: {problem}" if problem else f"notified: {message.title}")

    def recover(self, reason: str) -> Running | None:
        """Put the last good release back (or stop the new one when there is none) and
        verify it; returns what serves now. RollbackFailed when that fails too."""
        target = self.plan.rollback_target
        stack = self.parts.stack
        version = self.release.version
        with self.clock.check("rollback") as chk:
            if not self.cfg.rollback:
                chk.status = Status.SKIPPED
                chk.summary = "rollback disabled: the failed release was left running"
                return None
            back = f"rolling back to {target.describe()}" if target else "stopping it"
            msg = Message(f"staging deploy of {version} failed", (reason, back), ok=False)
            self.notify(msg)
            good = stack.read_files(compose.GOOD) if target else None
            if target is None or good is None:
                stack.compose("down", "--remove-orphans", check=False)
                self.parts.host.run(["rm", "-f", stack.path("release.env")], check=False)
                chk.summary = "no earlier good release: the new one was stopped"
                self.notify(Message(f"staging: {version} stopped", (chk.summary,), ok=False))
                return None
            stack.write_files(good)
            stack.compose("up", "-d", "--remove-orphans")
            why = self.healthy(target.digest)
            if why:
                chk.status = Status.FAILED
                chk.summary = f"rollback to {target.version} failed: {why}"
                self.notify(Message(f"staging ROLLBACK FAILED for {version}", (why,), ok=False))
                raise RollbackFailed(
                    f"{reason}; then the rollback to {target.describe()} failed too: {why}"
                )
            chk.summary = f"{target.describe()} serves again"
            self.notify(Message(f"staging rolled back to {target.version}", (chk.summary,)))
            return target

    # ---- the whole flow --------------------------------------------------------------
    def act(self) -> None:
        """Build, push, roll out, verify; recover on failure; then e2e. Raises the
        failure's error after recording and notifying."""
        facts = self.plan.facts
        self.build_and_push()
        files = self.files()
        started = time.monotonic()
        details = {"commit": self.release.commit, "image": self.out.image, "host": facts.host}
        from_version = facts.current.version if facts.current else None
        self.out.dep_id = self.parts.log.start(
            self.release.version, self.out.digest, from_version, details
        )
        try:
            self.roll_out(files)
            reason = self.verify()
        except Exception as err:  # a failed command or a defect: restore, then report it
            reason = str(err) if isinstance(err, DeployError) else f"{type(err).__name__}: {err}"
            self._fail(reason, started)
            raise
        except KeyboardInterrupt:
            self.say("interrupted: restoring the last good release")
            self._fail("interrupted", started)
            raise
        if reason:
            self._fail(reason, started)
            raise ReleaseUnhealthy(f"{reason}; {self._where_now()}")
        self.parts.stack.write_files(files, compose.GOOD)
        self.say(
            f"staging runs {self.release.version} ({self.out.digest[:19]}…): healthy, smoke passed"
        )
        self.notify(
            Message(
                f"{self.release.binary_name} {self.release.version} deployed to staging",
                (f"image {self.out.image}", "health and smoke tests passed", self.cfg.url),
            )
        )
        self.e2e(details)

    def _fail(self, reason: str, started: float) -> None:
        """Recover (signals deferred: a rollback is never cut short half-way), record."""
        log = self.parts.log
        with shield():
            try:
                restored = self.recover(reason)
            except Exception as err:
                log.finish(self.out.dep_id, "failed", {"reason": reason, "rollback": "failed"})
                if isinstance(err, RollbackFailed):
                    raise
                raise RollbackFailed(
                    f"{reason}; then the rollback failed too: {type(err).__name__}: {err}"
                ) from None
        self.restored = restored
        outcome = "rolled_back" if restored else "failed"
        log.finish(
            self.out.dep_id, outcome, {"reason": reason, "seconds": time.monotonic() - started}
        )
        if restored:
            log.recovered(self.out.dep_id, utc_now())

    def _where_now(self) -> str:
        if self.restored:
            return f"rolled back: {self.restored.describe()} serves again"
        return (
            "no earlier good release: nothing is serving" if self.cfg.rollback else "left running"
        )

    def e2e(self, details: dict[str, str]) -> None:
        """The e2e suite against the new release (with a restart through the control
        socket); the verdict is recorded and sent."""
        log, version = self.parts.log, self.release.version
        if not self.cfg.e2e:
            log.finish(
                self.out.dep_id, "succeeded", {**details, "smoke": "passed", "e2e": "skipped"}
            )
            return
        with self.clock.check("e2e") as chk:

            def restart() -> None:
                self.parts.stack.compose("restart", compose.SERVICE)

            with control_socket(restart) as sock:
                suite = run_suite(
                    self.runner,
                    log.settings.out_dir,
                    self.cfg.url,
                    smoke=False,
                    version=self.release.reported_version,
                    restart=restart_command(sock),
                )
            chk.summary = suite.summary
            verdict = "passed" if suite.passed else "failed"
            if not suite.passed:
                chk.status = Status.FAILED
        log.e2e(version, self.out.digest, verdict, suite.seconds, suite.tests)
        log.finish(self.out.dep_id, "succeeded", {**details, "smoke": "passed", "e2e": verdict})
        self.out.outputs["e2e"] = verdict
        gate = "production may take this version" if suite.passed else "production is BLOCKED"
        self.notify(
            Message(
                f"e2e {verdict} for {version} on staging", (suite.summary, gate), ok=suite.passed
            )
        )
        if not suite.passed:
            raise E2EFailed(
                f"e2e failed against staging ({suite.summary}): production is blocked for {version}"
            )


def close_quietly(parts: Parts) -> None:
    """Close connections, never raising."""
    with contextlib.suppress(Exception):
        parts.close()
