"""The cache audit (`invoke ci --audit-cache`): a sample of the stages that would be
replayed runs for real with the cache off, and each real verdict is compared with the
replayed one: status, test counts, findings. A disagreement means the entry's key missed
an input (a test reading a file outside the workspace, say): it fails the audit, names the
stage and the entry's inputs, and poisons the entry, so that key is never replayed again.

Planning (`sample`) and judging (`compare`, `conclude`) are pure; the flow runs the
stages (ci/pipeline.py).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ci.cache.store import CacheStore, Entry
from ci.errors import ConfigError
from ci.result import Finding, StageResult, Status, atomic_write

STAGE = "cache-audit"  # its row in the gate table, `<out_dir>/cache-audit.json`
# A real run that ended so reached no verdict to compare: it was stopped (cancelled,
# blocked by a need, past its hard limit on a busy machine) or the pipeline itself broke.
# An error (a tool or service the stage needs) is compared: a replay hid it.
_NO_VERDICT = (Status.CANCELLED, Status.BLOCKED, Status.TIMEOUT, Status.INTERNAL)
_COUNT = re.compile(r"\b(\d+) (passed|failed|ignored|skipped)\b")


def fraction(value: float) -> float:
    """A sample fraction: above 0, at most 1 (every entry)."""
    if not 0 < value <= 1:
        raise ConfigError(
            f"cache audit sample {value:g} is not a fraction in (0, 1]; 1 audits every "
            "entry that would be replayed, 0.25 a random quarter of them"
        )
    return value


def sample(names: Sequence[str], share: float, rng: random.Random | None = None) -> list[str]:
    """The stages to audit: a random `share` of `names` (at least one when there is any),
    in plan order. Random, so that nightly audits cover every entry over time."""
    share = fraction(share)
    count = min(len(names), max(1, math.ceil(share * len(names)))) if names else 0
    chosen = set((rng or random.Random()).sample(list(names), count))
    return [n for n in names if n in chosen]


def counts(result: StageResult) -> dict[str, int]:
    """What a verdict is made of: test counts (as the stage's checks report them), and
    the findings by severity."""
    out: dict[str, int] = {}
    texts = [c.summary for c in result.checks] or [result.summary]
    for text in texts:
        for number, kind in _COUNT.findall(text):
            out[f"tests {kind}"] = out.get(f"tests {kind}", 0) + int(number)
    out["findings"] = len(result.findings)
    for finding in result.findings:
        key = f"{finding.severity}s"
        out[key] = out.get(key, 0) + 1
    return out


def describe(result: StageResult) -> str:
    """`passed (12 tests passed, 0 findings)`."""
    parts = [f"{v} {k}" for k, v in sorted(counts(result).items())]
    return f"{result.status.value} ({', '.join(parts)})"


def compare(cached: StageResult, real: StageResult) -> list[str]:
    """How the real verdict differs from the replayed one (empty: they agree)."""
    diffs: list[str] = []
    if cached.status is not real.status:
        diffs.append(f"status {cached.status.value} -> {real.status.value}")
    before, after = counts(cached), counts(real)
    for key in sorted(before.keys() | after.keys()):
        if before.get(key, 0) != after.get(key, 0):
            diffs.append(f"{key} {before.get(key, 0)} -> {after.get(key, 0)}")
    return diffs


@dataclass
class Audited:
    """One audited entry: the replayed verdict, the real one, and how they differ."""

    stage: str
    entry: Entry
    real: StageResult
    diffs: list[str] = field(default_factory=list)

    @property
    def concluded(self) -> bool:
        """The real run reached a verdict (not cancelled, not blocked by a need)."""
        return self.real.status not in _NO_VERDICT

    @property
    def agrees(self) -> bool:
        return self.concluded and not self.diffs

    def to_dict(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "key": self.entry.path.name,
            "inputs": dict(self.entry.inputs),
            "cached": {
                "run_id": self.entry.run_id,
                "at": self.entry.at,
                "commit": self.entry.commit,
                "verdict": describe(self.entry.result),
            },
            "real": describe(self.real),
            "concluded": self.concluded,
            "agrees": self.agrees,
            "differences": self.diffs,
        }


def judge(entries: Mapping[str, Entry], results: Sequence[StageResult]) -> list[Audited]:
    """Compare each audited stage's real result with its entry."""
    by_name = {r.stage: r for r in results}
    out = []
    for stage, entry in entries.items():
        real = by_name.get(stage)
        if real is None:
            continue
        audited = Audited(stage, entry, real)
        if audited.concluded:
            audited.diffs = compare(entry.result, real)
        out.append(audited)
    return out


def poison(store: CacheStore, audited: Audited) -> None:
    """Never replay this entry's key again (nor the stage's per-package entries, which
    the audit cannot tell apart)."""
    why = f"the cache audit found {'; '.join(audited.diffs)}"
    store.poison(audited.stage, audited.entry.path.name, why)
    store.forget_packages(audited.stage)


def _inputs(entry: Entry) -> str:
    return ", ".join(f"{k}={v[:12]}" for k, v in sorted(entry.inputs.items()))


def conclude(
    audits: Sequence[Audited],
    replayable: int,
    out_dir: Path,
    redact: Callable[[str], str] = str,
) -> StageResult:
    """The audit's own result (a row of the gate table): how many entries were audited,
    how many disagreed, a finding per disagreement naming the stage and its inputs; the
    details in `<out_dir>/cache-audit/audit.json` and a markdown section."""
    agreed = [a for a in audits if a.agrees]
    disagreed = [a for a in audits if a.concluded and a.diffs]
    open_ = [a for a in audits if not a.concluded]
    findings = [
        Finding(
            STAGE,
            f"{a.stage}: the replayed verdict was {describe(a.entry.result)} but a real run "
            f"gave {describe(a.real)} ({'; '.join(a.diffs)}); an input is missing from its "
            f"key; entry {a.entry.path.name} (run {a.entry.run_id or '?'} at {a.entry.at}) "
            f"is poisoned; its inputs: {_inputs(a.entry)}",
            rule="cache-disagreement",
        )
        for a in disagreed
    ]
    summary = (
        f"audited {len(agreed) + len(disagreed)} of {replayable} replayable entries: "
        f"{len(agreed)} agreed, {len(disagreed)} disagreed"
    )
    if open_:
        summary += f" ({len(open_)} not concluded: {', '.join(a.stage for a in open_)})"
    if not audits:
        summary = f"nothing to audit: {replayable} replayable entries"
    status = Status.FAILED if disagreed else Status.PASSED if audits else Status.SKIPPED
    folder = out_dir / STAGE
    details = folder / "audit.json"
    atomic_write(
        details,
        redact(
            json.dumps(
                {
                    "replayable": replayable,
                    "audited": len(agreed) + len(disagreed),
                    "agreed": len(agreed),
                    "disagreed": len(disagreed),
                    "not_concluded": len(open_),
                    "entries": [a.to_dict() for a in audits],
                },
                indent=2,
            )
        )
        + "\n",
    )
    markdown = folder / "audit.md"
    atomic_write(markdown, redact(_markdown(audits, summary)))
    spent = round(sum(a.real.duration_s for a in audits), 3)
    budget = sum(a.real.budget_s for a in audits)
    return StageResult(
        STAGE,
        status,
        spent,
        budget,
        summary,
        findings=findings,
        artifacts={"details": str(details), "markdown": str(markdown)},
        outputs={
            "replayable": str(replayable),
            "audited": str(len(agreed) + len(disagreed)),
            "disagreed": str(len(disagreed)),
        },
    )


def _markdown(audits: Sequence[Audited], summary: str) -> str:
    out = [f"### Cache audit: {summary}", ""]
    if audits:
        out += ["| stage | replayed | real run | verdict |", "|---|---|---|---|"]
        for a in audits:
            verdict = "agrees" if a.agrees else "not concluded" if not a.concluded else "DIFFERS"
            out.append(
                f"| {a.stage} | {describe(a.entry.result)} | {describe(a.real)} | {verdict} |"
            )
    return "\n".join(out) + "\n"
