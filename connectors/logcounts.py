"""Server-side line counts and the sampling plan built from them.

The connector first counts lines per service x level x time bucket with one aggregation
(:class:`LineCounts`), then decides from those exact counts which lines to download
(:func:`plan_samples`): every line of a service under its cap; otherwise error lines first,
then warnings, then the rest, each tier spread over the window's time slices by
water-filling, so a quiet baseline keeps enough lines for template novelty to work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise

from agent.models import Signal, SignalKind

ERROR_TIER, WARN_TIER, REST_TIER = 0, 1, 2
# Warnings move with both causes and symptoms; the other lines mostly track requests served.
_TIER_KINDS = {
    ERROR_TIER: SignalKind.ERRORS,
    WARN_TIER: SignalKind.OTHER,
    REST_TIER: SignalKind.TRAFFIC,
}
_ALIASES = {"WARNING": "WARN", "ERR": "ERROR", "FATAL": "CRITICAL", "CRIT": "CRITICAL"}
_ERROR_LEVELS = frozenset({"ERROR", "CRITICAL", "SEVERE", "PANIC", "ALERT", "EMERGENCY"})
SLICES = 8


def canonical_level(raw: str | None) -> str:
    """The level as :class:`~agent.models.LogRecord` normalises it (``warning`` -> ``WARN``)."""
    level = (raw or "").strip().upper()
    return _ALIASES.get(level, level or "INFO")


def tier_of(raw: str | None) -> int:
    level = canonical_level(raw)
    if level in _ERROR_LEVELS:
        return ERROR_TIER
    return WARN_TIER if level == "WARN" else REST_TIER


def waterfill(counts: Sequence[int], budget: int) -> list[int]:
    """Split ``budget`` over slots holding ``counts``: small slots are taken whole, the
    rest share equally, and nothing is given beyond a slot's count."""
    alloc = [0] * len(counts)
    order = sorted(range(len(counts)), key=counts.__getitem__)
    left = budget
    for k, i in enumerate(order):
        alloc[i] = min(counts[i], left // (len(order) - k))
        left -= alloc[i]
    for i in reversed(order):  # the integer-division remainder, one line at a time
        if left <= 0:
            break
        if alloc[i] < counts[i]:
            alloc[i] += 1
            left -= 1
    return alloc


@dataclass
class LineCounts:
    """Line counts per (service, raw level) per histogram bucket over ``[start, end)``."""

    start_ms: int
    end_ms: int
    step_ms: int
    cells: dict[tuple[str, str | None], dict[int, int]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def add(self, service: str, level: str | None, bucket_ms: int, count: int) -> None:
        cell = self.cells[(service, level)]
        cell[bucket_ms] = cell.get(bucket_ms, 0) + count

    def services(self) -> list[str]:
        return sorted({service for service, _ in self.cells})

    def total(self, service: str, tier: int | None = None) -> int:
        return sum(
            sum(buckets.values())
            for (svc, level), buckets in self.cells.items()
            if svc == service and (tier is None or tier_of(level) == tier)
        )

    def levels(self, service: str, tier: int) -> list[str]:
        """The raw level values of ``service`` in ``tier`` (``None`` is never listed)."""
        return sorted(
            level
            for svc, level in self.cells
            if svc == service and level is not None and tier_of(level) == tier
        )

    def buckets(self) -> list[int]:
        """Every bucket start that overlaps the window, in order."""
        first = self.start_ms - self.start_ms % self.step_ms
        return list(range(first, self.end_ms, self.step_ms))

    def covered_s(self, bucket_ms: int) -> float:
        """Seconds of the window inside the bucket: edge buckets are cut by the window."""
        lo, hi = max(bucket_ms, self.start_ms), min(bucket_ms + self.step_ms, self.end_ms)
        return max(hi - lo, 0) / 1000.0


@dataclass(frozen=True)
class SampleRequest:
    """Up to ``limit`` lines of ``services`` in ``[start_ms, end_ms)`` of some levels."""

    services: tuple[str, ...]
    start_ms: int
    end_ms: int
    limit: int
    levels: tuple[str, ...] | None = None  # None: every level
    exclude_levels: tuple[str, ...] = ()


def _slices(counts: LineCounts) -> list[tuple[int, int, list[int]]]:
    """The window cut into up to :data:`SLICES` runs of whole buckets: (start, end, buckets)."""
    grid = counts.buckets()
    n = min(SLICES, len(grid))
    bounds = [round(i * len(grid) / n) for i in range(n + 1)]
    runs = []
    for lo, hi in pairwise(bounds):
        chunk = grid[lo:hi]
        start = max(chunk[0], counts.start_ms)
        end = min(chunk[-1] + counts.step_ms, counts.end_ms)
        runs.append((start, end, chunk))
    return runs


def _capped_requests(counts: LineCounts, service: str, quota: int) -> list[SampleRequest]:
    """Errors first, then warnings, then the rest, each tier water-filled over time slices."""
    requests: list[SampleRequest] = []
    slices = _slices(counts)
    flagged = tuple(counts.levels(service, ERROR_TIER) + counts.levels(service, WARN_TIER))
    left = quota
    for tier in (ERROR_TIER, WARN_TIER, REST_TIER):
        cells = [
            buckets
            for (svc, level), buckets in counts.cells.items()
            if svc == service and tier_of(level) == tier
        ]
        per_slice = [sum(c.get(b, 0) for c in cells for b in chunk) for _, _, chunk in slices]
        if left <= 0 or not any(per_slice):
            continue
        if tier == REST_TIER:
            levels, excluded = None, flagged
        else:
            levels, excluded = tuple(counts.levels(service, tier)), ()
        whole = sum(per_slice)
        if whole <= left:
            requests.append(
                SampleRequest((service,), counts.start_ms, counts.end_ms, whole, levels, excluded)
            )
            left -= whole
            continue
        for (start, end, _), share in zip(slices, waterfill(per_slice, left), strict=True):
            if share:
                requests.append(SampleRequest((service,), start, end, share, levels, excluded))
        left = 0
    return requests


def plan_samples(
    counts: LineCounts, cap: int, max_records: int
) -> tuple[list[SampleRequest], list[str]]:
    """The sample requests for every service, and a note for each service that was capped.

    Each service gets at most ``cap`` lines and all services together at most
    ``max_records`` (water-filled, so small services keep all their lines). Services that
    fit whole are fetched together in one request.
    """
    services = counts.services()
    totals = [counts.total(s) for s in services]
    quotas = waterfill([min(t, cap) for t in totals], max_records)
    whole = [s for s, t, q in zip(services, totals, quotas, strict=True) if q >= t]
    requests: list[SampleRequest] = []
    if whole:
        limit = sum(counts.total(s) for s in whole)
        requests.append(SampleRequest(tuple(whole), counts.start_ms, counts.end_ms, limit))
    notes: list[str] = []
    for service, total, quota in zip(services, totals, quotas, strict=True):
        if quota >= total:
            continue
        requests += _capped_requests(counts, service, quota)
        flagged = counts.total(service, ERROR_TIER) + counts.total(service, WARN_TIER)
        kept = "all" if flagged <= quota else f"{min(flagged, quota):,} of"
        notes.append(
            f"{service}: sampled {quota:,} of {total:,} log lines "
            f"({kept} {flagged:,} error/warning lines)"
        )
    return requests, notes


def count_signals(
    counts: LineCounts, origin: str, link: Callable[[str, str | None], str | None]
) -> list[Signal]:
    """Lines per second per service and level: error levels as ``errors`` series.

    Raw levels that normalise alike (``error``, ``ERROR``) are summed into one series; the
    edge buckets are divided by the part of them inside the window, and a bucket that is
    less than half inside it is dropped rather than read as a dip.
    """
    grid = [b for b in counts.buckets() if counts.covered_s(b) * 2000 >= counts.step_ms]
    merged: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    raw_of: dict[tuple[str, str], set[str | None]] = defaultdict(set)
    for (service, level), buckets in counts.cells.items():
        key = (service, canonical_level(level))
        raw_of[key].add(level)
        cell = merged[key]
        for bucket, n in buckets.items():
            cell[bucket] = cell.get(bucket, 0) + n
    signals = []
    for (service, level), buckets in sorted(merged.items()):
        raws = raw_of[(service, level)]
        raw = next(iter(raws)) if len(raws) == 1 else None
        kind = _TIER_KINDS[tier_of(level)]
        signals.append(
            Signal(
                service=service,
                name="log_lines",
                kind=kind,
                unit="lines/s",
                resolution_s=counts.step_ms / 1000.0,
                timestamps=[b / 1000.0 for b in grid],
                values=[buckets.get(b, 0) / counts.covered_s(b) for b in grid],
                labels={"level": level},
                origin=origin,
                link=link(service, raw),
            )
        )
    return signals


def to_datetime(epoch_ms: float) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)
