"""A success share read as the failing share it implies.

A series of the share of requests that succeeded (``success_rate``, ``PodSuccessRate(%)``,
``availability_ratio``) falls when requests fail: lower is worse, unlike every other error
series. The engine reads it as its complement, ``100 - <name>`` (``1 - <name>`` for a
ratio), an error series like any other: a success share that falls is errors that rise, for
the ranking, the fault reading and the canary alike, and the evidence quotes the failing
share it scored, under that name. Only series whose kind the source left open (a catalog
that declares one has said what it measures), whose name says success or availability but
not a count of successes (``..._success_total`` is traffic) nor a latency or resource, and
whose values stay within a share's range.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent.engine.detect.kinds import infer_kind
from agent.models import Signal, SignalKind

_SUCCESS = re.compile(r"success|availability", re.IGNORECASE)  # not "available" (free space)
_COUNT = re.compile(r"_total$|count|per_?s(?:ec(?:ond)?)?$", re.IGNORECASE)
_PERCENT_UNITS = frozenset({"%", "percent"})


def failing_share(signal: Signal) -> Signal | None:
    """The failing share a success share implies, or ``None`` for any other series."""
    if signal.kind is not None or not _is_success_share(signal.name, signal.unit):
        return None
    present = [v for v in signal.values if v is not None]
    whole = _whole(signal, present)
    if whole is None:
        return None
    return signal.model_copy(
        update={
            "name": f"{whole:g} - {signal.name}",
            "kind": SignalKind.ERRORS,
            "values": [None if v is None else whole - v for v in signal.values],
        }
    )


def failing_shares(signals: Iterable[Signal]) -> list[Signal]:
    """``signals`` with each success share replaced by its failing share."""
    return [failing_share(s) or s for s in signals]


def _is_success_share(name: str, unit: str) -> bool:
    """Named a success share: not a count of successes, nor a latency, resource or other
    series that happens to say "success" (``request_duration_seconds_success``)."""
    return bool(
        _SUCCESS.search(name)
        and not _COUNT.search(name)
        and infer_kind(name, unit) in (SignalKind.TRAFFIC, SignalKind.OTHER)
    )


def _whole(signal: Signal, present: list[float]) -> float | None:
    """What the share is out of: 100 for a percentage, 1 for a ratio; ``None`` where the
    values leave that range (then it is no share)."""
    if not present or min(present) < 0:
        return None
    percent = "%" in signal.name or signal.unit.strip().lower() in _PERCENT_UNITS
    top = max(present)
    if not percent and top <= 1:
        return 1.0
    return 100.0 if top <= 100 else None
