"""The incident report of a rolled-back rollout, under `<output_dir>/production/
incident-<id>/`: report.md (timeline, the trigger and its evidence, each colour's
metrics over the rollout, the failed colour's last log lines, a post-mortem checklist),
report.json (the same, for tools), the failed colour's full log tail and raw metrics,
and every sample. The report's text is the incident issue's body. Everything written
is masked."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ci.parsers import strip_ansi
from ci.result import atomic_write
from deploy.rollout.analysis import summary
from deploy.rollout.metrics import Sample
from deploy.rollout.state import RolloutState

CHECKLIST = (
    "Confirm all traffic is on the old colour and the failed colour is stopped",
    "Read the trigger's evidence and the failed colour's log lines below",
    "Find the root cause (the change between the two versions) and write it here",
    "Add a test or a gate that would have caught it before production",
    "Decide whether the alerting thresholds or windows need tuning",
    "Fix, release a new version, take it through staging and approvals again",
    "Close this issue with a link to the fix",
)


def _plain(s: Sample) -> dict[str, Any]:
    """A sample for report.json (its histogram is in the raw metrics files)."""
    data = asdict(s)
    data.pop("buckets", None)
    return data


def _row(colour: str, s: Sample | None) -> str:
    if s is None:
        return f"| {colour} | 0 | 0 | - | - | - | - |"
    rate = f"{s.error_rate:.2%}" if s.error_rate is not None else "-"

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    return (
        f"| {colour} | {s.requests} | {s.errors} | {rate} | {ms(s.p50_ms)} | "
        f"{ms(s.p95_ms)} | {ms(s.p99_ms)} |"
    )


def render(
    state: RolloutState,
    samples: Mapping[str, Sequence[Sample]],
    logs: str,
    recovery_s: float | None,
    alerts: Sequence[str],
) -> str:
    """The report as Markdown."""
    lines = [
        f"# Production rollback: {state.version} ({state.trigger or 'unknown trigger'})",
        "",
        f"- rollout `{state.id}`: {state.version} on **{state.new}**, "
        f"{state.old_version or 'nothing'} on {state.old or '-'}",
        f"- trigger: **{state.trigger}**: {state.reason}",
        f"- image: `{state.image}`",
        f"- reached step {state.step + 1} of {len(state.steps)} "
        f"({state.steps[state.step] if 0 <= state.step < len(state.steps) else 0}% of traffic)",
    ]
    if recovery_s is not None:
        lines.append(
            f"- all traffic back on {state.old or '-'} {recovery_s:.3f}s after the trigger"
        )
    lines += ["", "## Timeline", "", "| t (s) | at (UTC) | event |", "|---:|---|---|"]
    for e in state.events:
        lines.append(f"| {e.get('t', 0):.2f} | {e.get('at', '')} | {e.get('event', '')} |")
    lines += [
        "",
        "## Metrics over the rollout (worst sample quantiles)",
        "",
        "| colour | requests | errors | error rate | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for colour in sorted(samples):
        lines.append(_row(colour, summary(list(samples[colour]))))
    if alerts:
        lines += ["", "## Alerts (alerting thresholds)", ""]
        lines += [f"- {a}" for a in alerts[:50]]
    lines += ["", f"## Last log lines of {state.new} (the failed colour)", "", "```"]
    lines += logs.strip().splitlines()[-50:] or ["(no log lines)"]
    lines += ["```", "", "## Post-mortem checklist", ""]
    lines += [f"- [ ] {item}" for item in CHECKLIST]
    return "\n".join(lines) + "\n"


def write(
    folder: Path,
    state: RolloutState,
    samples: Mapping[str, Sequence[Sample]],
    logs: str,
    raw_metrics: Mapping[str, str],
    recovery_s: float | None,
    alerts: Sequence[str],
    mask: Callable[[str], str],
) -> tuple[Path, str]:
    """Write the report and the preserved evidence; (report.md path, its text)."""
    folder.mkdir(parents=True, exist_ok=True)
    logs = strip_ansi(logs)
    text = mask(render(state, samples, logs, recovery_s, alerts))
    atomic_write(folder / "report.md", text)
    data: dict[str, Any] = {
        "id": state.id,
        "version": state.version,
        "new": state.new,
        "old": state.old,
        "trigger": state.trigger,
        "reason": state.reason,
        "step": state.step,
        "steps": state.steps,
        "recovery_s": recovery_s,
        "timeline": state.events,
        "alerts": list(alerts),
        "samples": {c: [_plain(s) for s in v] for c, v in samples.items()},
    }
    atomic_write(folder / "report.json", mask(json.dumps(data, indent=1, default=str)) + "\n")
    atomic_write(folder / f"{state.new}.log", mask(logs))
    for colour, text_metrics in raw_metrics.items():
        atomic_write(folder / f"{colour}.metrics.txt", mask(text_metrics))
    return folder / "report.md", text
