"""Where the time of a request goes under load: the service's own histograms, scraped
from its `/metrics` before and after the measured run, as one row per phase (count,
mean and interpolated quantiles of what was observed in between).

The phases are the service's (`order_phase_seconds{phase=...}`, plus the batch sizes
of its sequencer, `sequencer_batch_size`); the request as the server saw it is
`http_request_duration_seconds` of the measured route. A service without these
families gives an empty breakdown, never an error: the gate stands on the client's
figures alone."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from ci.prometheus import Histogram, histograms

PHASE_FAMILY = "order_phase_seconds"
BATCH_FAMILY = "sequencer_batch_size"
HTTP_FAMILY = "http_request_duration_seconds"
HTTP_ROW = "http"  # the measured route as the server saw it
# A request's path through the service, in order, with what one observation of each
# phase is: the sequencer times some phases once per request, the others once per batch.
PATH = (
    (HTTP_ROW, "request"),
    ("sequenced", "request"),
    ("queue", "request"),
    ("batch", "batch"),
    ("market_lock", "batch"),
    ("begin", "batch"),
    ("lock_wait", "batch"),
    ("catch_up", "batch"),
    ("match", "batch"),
    ("write", "batch"),
    ("commit", "batch"),
    ("publish", "batch"),
)
PATH_ORDER = tuple(phase for phase, _ in PATH)
PER_BATCH = frozenset(phase for phase, per in PATH if per == "batch")


@dataclass(frozen=True)
class Row:
    """One phase over the measured run; times in ms (None: nothing observed)."""

    phase: str
    per: str  # "request" or "batch": what one observation is
    count: int
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Breakdown:
    """The rows in path order, the batches' mean size, and the machine's 1-minute load
    average when the run began and ended (os.getloadavg)."""

    rows: tuple[Row, ...]
    mean_batch: float | None
    load_start: float
    load_end: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Breakdown:
        """The inverse of `to_json`; ValueError when `text` is not one."""
        try:
            data = json.loads(text)
            rows = tuple(Row(**r) for r in data["rows"])
            return cls(rows, data["mean_batch"], data["load_start"], data["load_end"])
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"not a latency breakdown: {err}") from None


def scrape(url: str, timeout: float = 5.0) -> str | None:
    """The text of `url`, None when it cannot be read (a service without metrics)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return str(resp.read().decode("utf-8", errors="replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _row(phase: str, hist: Histogram) -> Row:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 4)

    per = "batch" if phase in PER_BATCH else "request"
    quantiles = (hist.quantile(q) for q in (0.5, 0.9, 0.99))
    return Row(phase, per, round(hist.count), ms(hist.mean), *(ms(q) for q in quantiles))


def breakdown(
    before: str, after: str, route: tuple[str, str], load: tuple[float, float]
) -> Breakdown:
    """The rows of what happened between two scrapes; `route` is (path, method) of the
    measured requests, `load` the load averages at the run's start and end."""

    def phases(text: str) -> dict[str, Histogram]:
        found = histograms(text, PHASE_FAMILY, lambda labels: labels.get("phase"))
        wanted = {"route": route[0], "method": route[1]}
        http = histograms(
            text,
            HTTP_FAMILY,
            lambda labels: HTTP_ROW if all(labels.get(k) == v for k, v in wanted.items()) else None,
        )
        return {**found, **http}

    old = phases(before)
    during = {name: hist.since(old.get(name, Histogram())) for name, hist in phases(after).items()}
    rows = tuple(_row(name, hist) for name, hist in during.items() if hist.count)

    def sizes(text: str) -> Histogram:
        return histograms(text, BATCH_FAMILY, lambda _: "all").get("all", Histogram())

    batch = sizes(after).since(sizes(before))
    return Breakdown(rows, batch.mean, round(load[0], 2), round(load[1], 2))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(result: Breakdown, order: Sequence[str] = ()) -> list[str]:
    """The breakdown as aligned text lines (rows in `order` first, then the rest)."""
    rank: Mapping[str, int] = {name: i for i, name in enumerate(order)}
    rows = sorted(result.rows, key=lambda r: (rank.get(r.phase, len(rank)), r.phase))
    lines = [
        f"load average (1 min) {result.load_start:.2f} at the start, "
        f"{result.load_end:.2f} at the end; mean batch "
        + ("-" if result.mean_batch is None else f"{result.mean_batch:.2f} requests"),
        f"{'phase':<12} {'per':<8} {'count':>7} {'mean ms':>9} {'p50 ms':>9} "
        f"{'p90 ms':>9} {'p99 ms':>9}",
    ]
    for r in rows:
        lines.append(
            f"{r.phase:<12} {r.per:<8} {r.count:>7} {_ms(r.mean_ms):>9} {_ms(r.p50_ms):>9} "
            f"{_ms(r.p90_ms):>9} {_ms(r.p99_ms):>9}"
        )
    return lines
