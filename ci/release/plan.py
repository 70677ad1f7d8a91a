"""The release plan: every check and every step, computed from read-only facts before
anything is built, written or sent. `make_plan` is pure; `show` renders it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.cargo import Crate
from ci.release import package
from ci.release.build import BuildSpec
from ci.release.checksums import SUMS_NAME
from ci.release.config import Options, ReleaseConfig
from ci.release.manifest import MANIFEST_NAME
from ci.release.repo import GitState, problems, source_date_epoch
from ci.release.version import Tag, version_problem

_LICENCE_PREFIXES = ("LICENSE", "LICENCE", "COPYING")


@dataclass(frozen=True)
class Facts:
    """What the read-only probes found (cargo metadata, git, rustc, installed tools)."""

    tag: Tag
    crate: Crate
    workspace: Path
    target_dir: Path
    git: GitState
    host: str
    rustc: str
    auditable: str | None
    target_std: bool | None = None  # --target's standard library present (None: not checked)


@dataclass(frozen=True)
class Check:
    """One precondition: `status` is ok, warn or FAIL; `text` says what and how to fix."""

    status: str
    text: str


@dataclass(frozen=True)
class Plan:
    """Everything the release will do, decided up front."""

    tag: Tag
    crate: Crate
    workspace: Path
    commit: str
    dirty: bool
    build: BuildSpec
    documents: tuple[Path, ...]
    out: Path  # <output_dir>/release
    epoch: int
    epoch_source: str
    publish: bool
    repository: str | None
    api_url: str
    checks: tuple[Check, ...]
    auditable: str | None
    rustc: str

    @property
    def target(self) -> str:
        return self.build.target

    @property
    def failures(self) -> list[str]:
        return [c.text for c in self.checks if c.status == "FAIL"]

    @property
    def staged_binary(self) -> Path:
        """The promoted copy of the binary the manifest points to."""
        return self.out / "bin" / self.build.output.name

    @property
    def dist(self) -> Path:
        return self.out / "dist"

    @property
    def archive(self) -> Path:
        return self.dist / package.archive_name(self.crate.binary, self.tag.version, self.target)

    @property
    def sums(self) -> Path:
        return self.dist / SUMS_NAME

    @property
    def manifest(self) -> Path:
        return self.out / MANIFEST_NAME


def find_documents(crate: Crate, workspace: Path) -> tuple[list[Path], list[str]]:
    """(README and licence files to ship, problems). The crate's declared `readme` and
    `license-file` first, else README.md / LICENSE* / COPYING* in the crate's folder, else
    in the workspace root."""
    found: list[Path] = []
    problems: list[str] = []
    readme = crate.readme if crate.readme and crate.readme.is_file() else None
    for folder in (crate.dir, workspace):
        if readme is None and (folder / "README.md").is_file():
            readme = folder / "README.md"
    if readme is None:
        problems.append(
            f"no README to ship: add README.md to {crate.dir} or {workspace}, "
            "or set `readme` in its Cargo.toml"
        )
    else:
        found.append(readme)
    licences: list[Path] = []
    if crate.license_file and crate.license_file.is_file():
        licences = [crate.license_file]
    for folder in (crate.dir, workspace):
        if not licences and folder.is_dir():
            licences = sorted(
                p for p in folder.iterdir() if p.is_file() and p.name.startswith(_LICENCE_PREFIXES)
            )
    if not licences:
        declared = f" (Cargo.toml declares {crate.license!r})" if crate.license else ""
        problems.append(
            f"no licence file to ship{declared}: add LICENSE (or LICENSE-MIT, LICENSE-APACHE, "
            f"...) to {workspace}, or set `license-file` in {crate.manifest.name}"
        )
    return found + licences, problems


def _checks(
    opts: Options,
    cfg: ReleaseConfig,
    facts: Facts,
    documents: Sequence[Path],
    doc_problems: Sequence[str],
) -> list[Check]:
    if opts.snapshot:
        checks = [Check("ok", f"main build {facts.tag.version} of commit {facts.git.head[:12]}")]
        if opts.publish:
            checks.append(Check("FAIL", "a main build is never published: pass --no-publish"))
        failures, warnings = problems(facts.git, None, opts.allow_dirty)
    else:
        checks = [Check("ok", f"tag {facts.tag.name} is a semantic version")]
        mismatch = version_problem(facts.tag, facts.crate, facts.workspace)
        checks.append(
            Check("FAIL", mismatch)
            if mismatch
            else Check("ok", f"{facts.crate.name} {facts.crate.version} matches the tag")
        )
        failures, warnings = problems(facts.git, facts.tag.name, opts.allow_dirty)
    checks += [Check("FAIL", text) for text in failures]
    checks += [Check("warn", text) for text in warnings]
    if facts.git.tag_commit == facts.git.head:
        checks.append(Check("ok", f"tag {facts.tag.name} points at HEAD {facts.git.head[:12]}"))
    if not facts.git.dirty:
        checks.append(Check("ok", "work tree clean"))
    if opts.target and facts.target_std is False:
        checks.append(
            Check(
                "FAIL",
                f"the standard library for target {opts.target} is not installed: "
                f"rustup target add {opts.target} (and a linker for it)",
            )
        )
    checks += [Check("FAIL", text) for text in doc_problems]
    if not doc_problems:
        checks.append(Check("ok", f"documents: {', '.join(d.name for d in documents)}"))
    if opts.publish:
        publish_problems = cfg.publish_problems()
        checks += [Check("FAIL", text) for text in publish_problems]
        if not publish_problems:
            checks.append(Check("ok", f"GITHUB_TOKEN set; publishing to {cfg.repository}"))
        if opts.allow_dirty and (facts.git.dirty or facts.git.tag_commit != facts.git.head):
            checks.append(
                Check("warn", "publishing a build that is not the tagged commit (--allow-dirty)")
            )
    return checks


def make_plan(opts: Options, cfg: ReleaseConfig, facts: Facts, out: Path) -> Plan:
    """The plan for `opts`: checks (failures included, so a dry run can show them all)
    and the steps."""
    documents, doc_problems = find_documents(facts.crate, facts.workspace)
    epoch, epoch_source = source_date_epoch(facts.git, cfg.source_date_epoch)
    spec = BuildSpec(
        crate=facts.crate.name,
        binary=facts.crate.binary,
        target=opts.target or facts.host,
        explicit_target=opts.target is not None,
        target_dir=facts.target_dir,
        strip=cfg.strip,
    )
    return Plan(
        tag=facts.tag,
        crate=facts.crate,
        workspace=facts.workspace,
        commit=facts.git.head,
        dirty=facts.git.dirty,
        build=spec,
        documents=tuple(documents),
        out=out,
        epoch=epoch,
        epoch_source=epoch_source,
        publish=opts.publish,
        repository=cfg.repository,
        api_url=cfg.api_url,
        checks=tuple(_checks(opts, cfg, facts, documents, doc_problems)),
        auditable=facts.auditable,
        rustc=facts.rustc,
    )


def _short(path: Path, base: Path) -> str:
    """`path` relative to `base` when it is inside it (shorter plans), else as is."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def show(plan: Plan, pinned_auditable: str) -> list[str]:
    """The plan as lines for the terminal (ASCII: Windows consoles print it too)."""
    ws = plan.workspace
    pre = "yes" if plan.tag.prerelease else "no"
    lines = [
        f"release {plan.crate.binary} {plan.tag.name} for {plan.target} "
        f"(commit {plan.commit[:12]}{', dirty' if plan.dirty else ''}; prerelease: {pre})",
        "checks:",
    ]
    lines += [f"  {c.status:<4} {c.text}" for c in plan.checks]
    tool = (
        f"cargo-auditable {plan.auditable}"
        if plan.auditable
        else f"cargo-auditable {pinned_auditable} to install"
    )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(plan.epoch))
    docs = ", ".join(d.name for d in plan.documents)
    entries = f"{plan.build.output.name}{', ' + docs if docs else ''}"
    steps = [
        f"build      cargo {' '.join(plan.build.args())}  "
        f"(CARGO_PROFILE_RELEASE_STRIP={plan.build.strip}; {tool}; rustc {plan.rustc})",
        f"stage      {plan.build.output} -> {_short(plan.staged_binary, ws)}",
        f"package    {_short(plan.archive, ws)}: {entries} (mtime {stamp}, {plan.epoch_source})",
        f"checksums  {_short(plan.sums, ws)}",
        f"manifest   {_short(plan.manifest, ws)}",
    ]
    if plan.publish:
        kind = "pre-release" if plan.tag.prerelease else "release"
        steps.append(
            f"publish    {kind} {plan.tag.name} on {plan.repository or '(no repository)'} "
            f"via {plan.api_url}: "
            f"create or reuse, upload {plan.archive.name} and {SUMS_NAME}, verify"
        )
    else:
        steps.append("publish    skipped: --no-publish")
    lines.append("steps:")
    lines += [f"  {i}. {text}" for i, text in enumerate(steps, 1)]
    return lines
