"""The result files a report is rendered from, read strictly: a report is refused (one
line, nothing written) when no stage has run yet or when a result file is corrupt, rather
than rendering a gate table with a silently missing stage."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ci.reports.errors import ReportError
from ci.result import StageResult, result_path


def read_strict(out_dir: Path, stage: str) -> StageResult | None:
    """The stage's result; None when it has none; ReportError when the file is corrupt."""
    path = result_path(out_dir, stage)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ReportError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return StageResult.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as err:
        what = type(err).__name__
        raise ReportError(
            f"{path} is not a stage result ({what}: {str(err)[:80]}); rerun "
            f"`nox -s {stage}` or delete the file"
        ) from None


def load_results(out_dir: Path, names: Sequence[str]) -> list[StageResult]:
    """The results of `names` present in `out_dir` (in that order); ReportError when
    there are none at all or one is corrupt."""
    if not out_dir.is_dir():
        raise ReportError(f"no results in {out_dir}: run `invoke ci` (or a `nox -s` stage) first")
    results = [r for r in (read_strict(out_dir, n) for n in names) if r is not None]
    if not results:
        raise ReportError(f"no results in {out_dir}: run `invoke ci` (or a `nox -s` stage) first")
    return results
