"""Findings about a service's logs as a whole, not one template's.

A service that went silent, one whose share of error lines jumped, and one that logged the
first error of many more traces than before (where failing requests began, from
:mod:`agent.engine.detect.traces`).
"""

from __future__ import annotations

import math
from collections import Counter

from agent.engine.detect.companions import Missing
from agent.engine.detect.logfinding import (
    ERROR_LEVELS,
    SCORE_CAP,
    LogFinding,
    Rates,
    Tally,
    signatures_of,
)
from agent.engine.detect.logshape import headline
from agent.engine.detect.traces import TraceOrigin, poisson_z

# How surprising (z-like) a late start within the logs must be for an origin to count in full.
LATE_START_Z = 2.0


def _late_start(count: int, onset: float, rates: Rates) -> float:
    """What share of its score a service's first errors of traces keep when the logs begin
    after the split, so no baseline line says whether those errors are new.

    The logs' own first stretch is then the baseline: ``count`` traces that failed at a steady
    rate all land after the first one, ``onset - logs_start`` into a span of ``T`` seconds, with
    probability ``((T - gap) / T) ** count``. Errors there from the first line on may be as old
    as the service (one that fails some look-ups in every incident); errors that
    began while the logs were already flowing are news. (Applied to unbaselined templates
    too, it cost fault types and ranks on the real alert suites: docs/history/real-data-rounds.md.)
    """
    if rates.logs_start is None or rates.logs_end is None:
        return 1.0
    span = rates.logs_end - rates.logs_start
    gap = onset - rates.logs_start
    if span <= 0 or gap <= 0 or gap >= span:
        return 0.0 if gap <= 0 else 1.0
    z = math.sqrt(-2.0 * count * math.log((span - gap) / span))
    return min(1.0, z / LATE_START_Z)


def origin_finding(origin: TraceOrigin, template: str, rates: Rates) -> LogFinding:
    """A service that logged the first error of many more traces than before: requests began
    to fail there, and ``followers`` logged their errors about it afterwards."""
    return LogFinding(
        service=origin.service,
        pattern="origin",
        template=template,
        level="ERROR",
        baseline_count=origin.baseline_count,
        incident_count=origin.incident_count,
        baseline_rate=origin.baseline_count / rates.base_minutes,
        incident_rate=origin.incident_count / rates.covered_minutes,
        score=min(SCORE_CAP, origin.score)
        * _late_start(origin.incident_count, origin.onset, rates),
        onset=origin.onset,
        end=rates.end,
        sample=headline(origin.sample) or None,
        signatures=signatures_of(template),
        mentions=frozenset(),
        logs_start=rates.logs_start,
        followers=origin.followers,
    )


def missing_finding(missing: Missing, rates: Rates, since: float) -> LogFinding:
    """A service that dropped out, from ``since``, of the requests of several services it
    used to serve alongside: it no longer gets as far as its lines in them (it throws first),
    or is no longer reached."""
    return LogFinding(
        service=missing.service,
        pattern="unreached",
        template="<its lines in others' requests>",
        level="INFO",
        baseline_count=round(missing.expected),
        incident_count=missing.observed,
        baseline_rate=missing.expected / rates.inc_minutes,
        incident_rate=missing.observed / rates.inc_minutes,
        score=min(SCORE_CAP, missing.score),
        onset=since,
        end=rates.end,
        sample=None,
        signatures=frozenset(),
        mentions=frozenset(),
        followers=missing.companions,
    )


def service_findings(
    tallies: dict[tuple[str, int, str], Tally], rates: Rates, threshold: float
) -> tuple[list[LogFinding], set[str]]:
    """Whole-service shifts: the service went quiet, or its share of error lines jumped."""
    totals: dict[str, Counter[str]] = {}
    late_start = rates.split + (rates.end - rates.split) / 2
    for (service, _, level), tally in tallies.items():
        counts = totals.setdefault(service, Counter())
        counts["base"] += tally.baseline
        counts["inc"] += tally.incident
        counts["late"] += sum(t >= late_start for t in tally.times)
        if level in ERROR_LEVELS:
            counts["base_err"] += tally.baseline
            counts["inc_err"] += tally.incident
    found: list[LogFinding] = []
    for service, counts in totals.items():
        found.extend(_service_shift(service, counts, rates, threshold))
    silent = {f.service for f in found if f.pattern == "vanished"}
    return found, silent


def _service_shift(
    service: str, counts: Counter[str], rates: Rates, threshold: float
) -> list[LogFinding]:
    found: list[LogFinding] = []
    base, inc = counts["base"], counts["inc"]
    base_rate, inc_rate = base / rates.base_minutes, inc / rates.inc_minutes
    expected_late = base * rates.scale / 2
    if expected_late >= 10 and counts["late"] <= 0.05 * expected_late and inc_rate < base_rate:
        score = min(SCORE_CAP, poisson_z(expected_late, 0) / 2)
        found.append(
            LogFinding(
                service,
                "vanished",
                "<all log lines>",
                "INFO",
                base,
                inc,
                base_rate,
                inc_rate,
                score,
                rates.split,
                rates.end,
                None,
                frozenset(),
                frozenset(),
            )
        )
    if inc >= 5:
        p0 = (counts["base_err"] + 1) / (base + 2)
        p1 = counts["inc_err"] / inc
        z = (p1 - p0) / math.sqrt(p0 * (1 - p0) / inc)
        if z >= threshold and p1 >= 2 * p0:
            found.append(
                LogFinding(
                    service,
                    "error_rate",
                    f"error share {p0:.1%} -> {p1:.1%}",
                    "ERROR",
                    counts["base_err"],
                    counts["inc_err"],
                    counts["base_err"] / rates.base_minutes,
                    counts["inc_err"] / rates.inc_minutes,
                    min(SCORE_CAP, z),
                    rates.split,
                    rates.end,
                    None,
                    frozenset(),
                    frozenset(),
                )
            )
    return found
