"""How `cargo llvm-cov` is called (engine "llvm-cov"): source-based coverage, rustc's
`-C instrument-coverage` profiles merged by `llvm-profdata` and read by `llvm-cov` of the
SAME LLVM major as rustc (a profile of another format version is refused or misread).
The rustup component llvm-tools is not reachable everywhere; Debian's `llvm-N` is, so the
tools are found, and their major checked against `rustc -vV`, here. Building the command,
the environment and the version checks are pure functions; `find_tools` probes.

The test output is libtest's (cargo test), read by the same parsers as tarpaulin's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci.coverage.config import CoverageConfig
from ci.errors import ToolMissing

COBERTURA = "cobertura.xml"
TOOLS = ("llvm-profdata", "llvm-cov")

_RUSTC_LLVM = re.compile(r"^LLVM version: (\d+)\.", re.M)
_TOOL_LLVM = re.compile(r"LLVM version (\d+)\.")


def rustc_llvm_major(rustc_vv: str) -> int | None:
    """The LLVM major of `rustc -vV`'s output ("LLVM version: 22.1.2" -> 22)."""
    match = _RUSTC_LLVM.search(rustc_vv)
    return int(match.group(1)) if match else None


def tool_llvm_major(version_output: str) -> int | None:
    """The LLVM major of `llvm-profdata --version` ("LLVM version 22.1.8" -> 22)."""
    match = _TOOL_LLVM.search(version_output)
    return int(match.group(1)) if match else None


def candidates(
    cfg: CoverageConfig, env: Mapping[str, str], major: int, rustlib_bin: Path | None = None
) -> list[dict[str, Path | str]]:
    """Where to look for llvm-profdata and llvm-cov, in order: `coverage.llvm_bin`, then
    $LLVM_PROFDATA/$LLVM_COV (cargo-llvm-cov's own variables), then rustup's llvm-tools
    component (`rustlib_bin`: always rustc's own LLVM, where rustup can reach it), then
    Debian's /usr/lib/llvm-<major>/bin, then `llvm-profdata-<major>` and `llvm-profdata`
    on PATH (a bare name: resolved by the caller)."""
    found: list[dict[str, Path | str]] = []
    if cfg.llvm_bin:
        found.append({t: Path(cfg.llvm_bin) / t for t in TOOLS})
    if env.get("LLVM_PROFDATA") and env.get("LLVM_COV"):
        found.append({"llvm-profdata": env["LLVM_PROFDATA"], "llvm-cov": env["LLVM_COV"]})
    if rustlib_bin is not None:
        found.append({t: rustlib_bin / t for t in TOOLS})
    found.append({t: Path(f"/usr/lib/llvm-{major}/bin") / t for t in TOOLS})
    found.append({t: f"{t}-{major}" for t in TOOLS})
    found.append({t: t for t in TOOLS})
    return found


def mismatch(tool: str, path: str, tool_major: int | None, rustc_major: int) -> str | None:
    """The one line saying why `path` cannot read this rustc's profiles, or None."""
    if tool_major == rustc_major:
        return None
    got = f"LLVM {tool_major}" if tool_major is not None else "no LLVM version"
    return (
        f"{path} reports {got} but rustc uses LLVM {rustc_major}: install llvm-{rustc_major} "
        f"(apt-get install llvm-{rustc_major}, or bash .ci/setup tools) or point "
        f"[tool.pipeline.coverage] llvm_bin at LLVM {rustc_major}'s bin folder"
    )


def not_found(major: int) -> ToolMissing:
    """The error when no llvm-profdata/llvm-cov pair exists at all."""
    return ToolMissing(
        "llvm-profdata",
        f"the llvm-cov coverage engine needs llvm-profdata and llvm-cov of LLVM {major} "
        f"(rustc's): apt-get install llvm-{major} (bash .ci/setup tools does), or set "
        f'[tool.pipeline.coverage] llvm_bin, or engine = "tarpaulin"',
    )


def ignore_regex(cfg: CoverageConfig, workspace: Path) -> str | None:
    """`exclude_files` globs (workspace-relative, matched as tarpaulin's --exclude-files
    matches them: `*` crosses folders) as one --ignore-filename-regex over the absolute
    paths llvm-cov sees. LLVM's regex is POSIX ERE: plain groups, no Python syntax."""
    if not cfg.exclude_files:
        return None
    root = _ere_escape(str(workspace).rstrip(os.sep) + os.sep)
    return f"^{root}({'|'.join(_glob_to_ere(g) for g in cfg.exclude_files)})$"


def _ere_escape(text: str) -> str:
    return "".join("\\" + ch if ch in _ERE_SPECIAL else ch for ch in text)


def _glob_to_ere(glob: str) -> str:
    return "".join(".*" if ch == "*" else "." if ch == "?" else _ere_escape(ch) for ch in glob)


_ERE_SPECIAL = set(".^$+(){}[]|\\*?")


def command(
    exe: str,
    cfg: CoverageConfig,
    *,
    extra: Sequence[str] = (),
) -> list[str]:
    """`cargo llvm-cov --no-report` over the whole workspace: every test (unit,
    integration, doc tests when enabled), all of them even after a failure. The report is
    a second step (`report_command`) so a failing test still leaves figures, as tarpaulin
    does (`cargo llvm-cov` alone writes no report when a test fails). The stale profiles
    of the workspace's crates are cleaned first (cargo-llvm-cov's default), so a run never
    counts an earlier one. `extra`: the user's own arguments (after a second `--`)."""
    argv = [exe, "llvm-cov", "--no-report", "--workspace", "--no-fail-fast"]
    argv += ["--color", "never"]
    if cfg.doctests:
        argv.append("--doctests")
    return [*argv, *extra]


def report_command(
    exe: str, cfg: CoverageConfig, *, workspace: Path, output_dir: Path
) -> list[str]:
    """`cargo llvm-cov report`: the profiles of the run above as Cobertura in
    `output_dir`, the excluded files left out."""
    argv = [exe, "llvm-cov", "report", "--color", "never"]
    argv += ["--cobertura", "--output-path", str(output_dir / COBERTURA)]
    if cfg.doctests:
        argv.append("--doctests")
    regex = ignore_regex(cfg, workspace)
    if regex:
        argv += ["--ignore-filename-regex", regex]
    return argv


def environment(
    cfg: CoverageConfig, target_dir: Path, profdata: str, llvm_cov: str
) -> dict[str, str]:
    """Its own target dir (the normal build cache stays valid), the LLVM tools of rustc's
    major, and for doc tests on a stable toolchain RUSTC_BOOTSTRAP=1 (cargo-llvm-cov's
    --doctests needs rustdoc's unstable -C instrument-coverage for doc tests)."""
    env = {"CARGO_TARGET_DIR": str(target_dir), "LLVM_PROFDATA": profdata, "LLVM_COV": llvm_cov}
    if cfg.doctests:
        env["RUSTC_BOOTSTRAP"] = "1"
    return env


def find_tools(cfg: CoverageConfig, env: Mapping[str, str]) -> tuple[str, str, int]:
    """(llvm-profdata, llvm-cov, LLVM major) usable with this rustc: the first candidate
    pair that exists; ToolMissing (one line) when none does or its major is not rustc's.
    Quiet probes (`rustc -vV`, `<tool> --version`), not pipeline steps."""
    rustc = shutil.which(env.get("RUSTC", "rustc"), path=env.get("PATH"))
    verbose = _probe([rustc, "-vV"]) if rustc else ""
    major = rustc_llvm_major(verbose)
    if major is None:
        raise ToolMissing("rustc", "`rustc -vV` names no LLVM version; install Rust with rustup")
    host = re.search(r"^host: (\S+)", verbose, re.M)
    sysroot = _probe([str(rustc), "--print", "sysroot"]).strip()
    rustlib = (
        Path(sysroot) / "lib" / "rustlib" / host.group(1) / "bin" if host and sysroot else None
    )
    for pair in candidates(cfg, env, major, rustlib):
        paths = {t: shutil.which(str(p), path=env.get("PATH")) for t, p in pair.items()}
        if not all(paths.values()):
            continue
        for tool, path in paths.items():
            line = mismatch(
                tool, str(path), tool_llvm_major(_probe([str(path), "--version"])), major
            )
            if line:
                raise ToolMissing(tool, line)
        return str(paths["llvm-profdata"]), str(paths["llvm-cov"]), major
    raise not_found(major)


def version_line(tool: str) -> str:
    """The line of `<tool> --version` naming its LLVM version ("" when none)."""
    out = _probe([tool, "--version"])
    return next((line.strip() for line in out.splitlines() if _TOOL_LLVM.search(line)), "")


def _probe(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout + proc.stderr
