"""The release flow: gather facts -> plan -> show -> act -> verify.

Nothing is built, written or sent before every check passed; `--dry-run` stops after
showing the plan (and fails when a check does, so it is a real preflight).
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ci import cargo, tools
from ci.cargo import find_crate
from ci.contract import StageContext
from ci.release import archive, build, package
from ci.release.checksums import SUMS_NAME, format_sums, sha256_file
from ci.release.config import Options, ReleaseConfig
from ci.release.errors import BuildFailed, PreconditionFailed
from ci.release.github import GitHubReleases
from ci.release.manifest import MANIFEST_SCHEMA, record_release, write_manifest
from ci.release.plan import Facts, Plan, make_plan, show
from ci.release.publish import LocalAsset, Publisher
from ci.release.repo import read_state
from ci.release.version import parse_tag, snapshot_tag
from ci.result import atomic_write


def gather(ctx: StageContext, opts: Options, cfg: ReleaseConfig) -> Facts:
    """Read-only probes: the tag's syntax first (no process runs for a malformed tag),
    then cargo metadata, git, rustc and the installed cargo-auditable."""
    tag = parse_tag(opts.tag) if not opts.snapshot else None
    meta = cargo.metadata(ctx)
    crate = find_crate(meta, cfg.binary)
    git = read_state(ctx.runner, ctx.workspace, tag.name if tag else "")
    if tag is None:
        tag = snapshot_tag(crate.version, git.head)
    rustc = build.rustc_facts(ctx.runner, ctx.cargo_env())
    std = build.std_installed(ctx.runner, ctx.cargo_env(), opts.target) if opts.target else None
    return Facts(
        tag=tag,
        crate=crate,
        workspace=ctx.workspace,
        target_dir=Path(meta["target_directory"]),
        git=git,
        host=rustc["host"],
        rustc=rustc.get("release", "?"),
        auditable=_auditable_version(ctx),
        target_std=std,
    )


def _auditable_version(ctx: StageContext) -> str | None:
    found = build.find_auditable(ctx.runner.base_env)
    return found[1] if found else None


def prepare(ctx: StageContext, opts: Options, cfg: ReleaseConfig) -> Plan:
    """Plan and show; raise PreconditionFailed (nothing done yet) when a check failed."""
    plan = make_plan(opts, cfg, gather(ctx, opts, cfg), ctx.out_dir / "release")
    for line in show(plan, tools.get(build.AUDITABLE).version):
        ctx.runner.say(line)
    failures = plan.failures
    if failures:
        more = f" (and {len(failures) - 1} more failed checks above)" if len(failures) > 1 else ""
        raise PreconditionFailed(failures[0] + more)
    return plan


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - start, 3)


def _stage_binary(src: Path, dest: Path) -> None:
    """Copy the built binary to the promoted location atomically, mode 0755."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, archive.EXEC_MODE)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clear_dist(dist: Path, keep: set[str]) -> None:
    """dist/ holds exactly this run's assets: older archives would be mistaken for them."""
    if dist.is_dir():
        for old in dist.iterdir():
            if old.is_file() and old.name not in keep:
                old.unlink()


def build_and_package(ctx: StageContext, plan: Plan, cfg: ReleaseConfig) -> dict[str, Any]:
    """Build, check, stage, package and checksum; write the manifest; return it."""
    timings: dict[str, float] = {}
    say = ctx.runner.say
    # The previous manifest describes files this run replaces: a run that fails half-way
    # must not leave it pointing at a binary it no longer matches.
    plan.manifest.unlink(missing_ok=True)
    with ctx.runner.group("release: build"), _timed(timings, "build"):
        tool, auditable = build.ensure_auditable(ctx.runner, cfg.install_tools)
        built = build.build(ctx, plan.build, tool)
        facts = build.inspect(built)
        problems = build.check_binary(facts, plan.build.strip)
        if problems:
            raise BuildFailed(problems[0])
        symbols = {True: "symbol table present", False: "no symbol table", None: "not checked"}
        size = built.stat().st_size
        say(
            f"built {built} ({size} bytes, {facts.format}, {symbols[facts.symbols]}, "
            "cargo-auditable dependency list embedded)"
        )
    with ctx.runner.group("release: package"), _timed(timings, "package"):
        _stage_binary(built, plan.staged_binary)
        entries = package.layout(
            plan.crate.binary, plan.tag.version, plan.target, plan.staged_binary, plan.documents
        )
        _clear_dist(plan.dist, {plan.archive.name, SUMS_NAME})
        package.write_archive(plan.archive, entries, plan.target, plan.epoch)
        digests = {plan.archive.name: sha256_file(plan.archive)}
        atomic_write(plan.sums, format_sums(digests))
        for entry in entries:
            say(f"  {entry.mode:o} {entry.name}")
        say(f"packaged {plan.archive} ({plan.archive.stat().st_size} bytes)")
    binary_digest = sha256_file(plan.staged_binary)
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "crate": plan.crate.name,
        "version": plan.tag.version,
        # what the binary itself reports (its crate's version): a main build's version
        # (`<crate version>-main.g<commit>`) is the build's, not the binary's
        "crate_version": plan.crate.version,
        "tag": plan.tag.name,
        "prerelease": plan.tag.prerelease,
        "commit": plan.commit,
        "dirty": plan.dirty,
        "target": plan.target,
        "source_date_epoch": plan.epoch,
        "binary": {
            "path": plan.staged_binary.relative_to(plan.out).as_posix(),
            "name": plan.staged_binary.name,
            "sha256": binary_digest,
            "size": plan.staged_binary.stat().st_size,
            "strip": plan.build.strip,
            "symbols": facts.symbols,
            "auditable": facts.auditable,
        },
        "archives": [
            {
                "name": plan.archive.name,
                "path": plan.archive.relative_to(plan.out).as_posix(),
                "sha256": digests[plan.archive.name],
                "size": plan.archive.stat().st_size,
            }
        ],
        "checksums": plan.sums.relative_to(plan.out).as_posix(),
        "build": {"command": ["cargo", *plan.build.args()], "profile": "release"},
        "tools": {
            "rustc": plan.rustc,
            "cargo-auditable": auditable,
            "python": platform.python_version(),
        },
        "timings": timings,
        "published": None,
    }
    write_manifest(plan.manifest, manifest)
    say(f"manifest {plan.manifest} (binary sha256 {binary_digest})")
    return manifest


def publish(
    plan: Plan,
    cfg: ReleaseConfig,
    manifest: dict[str, Any],
    say: Callable[[str], None],
    client: GitHubReleases | None = None,
) -> dict[str, Any]:
    """Converge the GitHub release to this run's assets, verify it, record it in the
    manifest (rewritten atomically) and return the manifest."""
    assert cfg.repository is not None and cfg.token is not None  # checked in the plan
    archive = manifest["archives"][0]
    fmt = package.platform_for(plan.target).format
    asset = LocalAsset(
        archive["name"], plan.archive, archive["size"], archive["sha256"], fmt.content_type
    )
    start = time.monotonic()
    client = client or GitHubReleases(
        cfg.api_url, cfg.repository, cfg.token, backoff=cfg.backoff, timeout=cfg.timeout, say=say
    )
    try:
        publisher = Publisher(client, cfg.conflict, say)
        body = (
            f"{plan.crate.binary} {plan.tag.version}, built from {plan.commit[:12]}. "
            f"Verify downloads with `sha256sum --ignore-missing -c {SUMS_NAME}`."
        )
        release, created = publisher.release(plan.tag.name, plan.commit, plan.tag.prerelease, body)
        say(f"publish: release {plan.tag.name} {'created' if created else 'exists, reused'}")
        report = publisher.converge(release, [asset], {asset.name: asset.sha256})
    finally:
        client.close()
    report.created = created
    for line in report.verified:
        say(f"verified {line}")
    manifest["timings"]["publish"] = round(time.monotonic() - start, 3)
    manifest["published"] = {
        "repository": cfg.repository,
        "release_id": report.release_id,
        "url": report.url,
        "created": report.created,
        "uploaded": report.uploaded,
        "replaced": report.replaced,
        "unchanged": report.unchanged,
    }
    write_manifest(plan.manifest, manifest)
    changed = report.uploaded + report.replaced
    say(
        f"published {plan.tag.name} to {cfg.repository}: "
        + (f"uploaded {', '.join(changed)}" if changed else "nothing to change")
        + f" ({report.rounds} round{'s' if report.rounds > 1 else ''})"
    )
    return manifest


def release(ctx: StageContext, opts: Options, cfg: ReleaseConfig) -> dict[str, Any] | None:
    """The whole flow. Returns the manifest, or None after a dry run."""
    plan = prepare(ctx, opts, cfg)
    if opts.dry_run:
        ctx.runner.say("dry run: nothing built, written or published")
        return None
    manifest = build_and_package(ctx, plan, cfg)
    if opts.publish:
        with ctx.runner.group("release: publish"):
            manifest = publish(plan, cfg, manifest, ctx.runner.say)
    ctx.runner.say(record_release(ctx.settings, manifest))
    return manifest
