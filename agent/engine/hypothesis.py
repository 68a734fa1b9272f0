"""Name the fault behind a candidate service from the shape of its evidence.

Each fault type has a signature: which metric families moved (matched on names, so any naming
convention works) and which log signatures appeared. Scores add the strength of matching
findings; the strongest signature wins, and a service whose only findings are symptoms gets
the symptom-level hypothesis (its own serving latency -> network latency, errors -> code
exception; a wait on its callees is evidence about them, not about it).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from agent.engine.detect.kinds import side_of
from agent.engine.detect.logfinding import LogFinding
from agent.engine.detect.series import SeriesFinding
from agent.models import FaultType, SignalKind


@dataclass(frozen=True)
class MetricRule:
    fault: FaultType
    name: re.Pattern[str]
    weight: float
    direction: int = 1  # +1 rising / -1 falling is the signature; 0: any change counts


METRIC_RULES: tuple[MetricRule, ...] = (
    MetricRule(FaultType.CPU_SATURATION, re.compile(r"cpu|throttl|load\d"), 1.0),
    MetricRule(FaultType.MEMORY_LEAK, re.compile(r"mem|heap|rss|working_?set|swap"), 1.0),
    MetricRule(FaultType.MEMORY_LEAK, re.compile(r"oom"), 1.2, 0),
    MetricRule(FaultType.MEMORY_LEAK, re.compile(r"restart"), 0.5, 0),
    MetricRule(
        FaultType.DISK_FULL,
        re.compile(r"(?:disk|fs_|filesystem|volume|storage).*(?:avail|free)|(?:avail|free).*disk"),
        1.1,
        -1,
    ),
    MetricRule(FaultType.DISK_FULL, re.compile(r"disk|fs_|filesystem|volume|storage|inode"), 1.1),
    MetricRule(
        FaultType.DB_POOL_EXHAUSTION,
        re.compile(r"pool|hikari|conn(?:ection)?s?_?(?:in_?use|active|pending|wait|used)|db_?conn"),
        1.1,
    ),
    MetricRule(
        FaultType.BAD_DEPLOY,
        re.compile(r"version|deploy|generation|revision|rollout|image|build_?info|release"),
        1.2,
        0,
    ),
    MetricRule(
        FaultType.PACKET_LOSS,
        re.compile(r"retrans|drop|loss|packet|reset|corrupt|net(?:work)?_.*err"),
        1.1,
    ),
    MetricRule(FaultType.NETWORK_LATENCY, re.compile(r"rtt|network.*(?:latency|delay)|ping"), 1.0),
)

WORKING_SET_WEIGHT = 0.5  # a CPU hog's memory step, read as a leak
STEP_SHARE = 0.75  # share of its rise a series reached in its first raised sample: a step

LOG_RULES: dict[str, tuple[FaultType, float]] = {
    "oom": (FaultType.MEMORY_LEAK, 1.0),
    "disk": (FaultType.DISK_FULL, 1.0),
    "pool": (FaultType.DB_POOL_EXHAUSTION, 0.9),
    "deploy": (FaultType.BAD_DEPLOY, 0.6),
    "reset": (FaultType.PACKET_LOSS, 0.6),
    "cpu": (FaultType.CPU_SATURATION, 0.5),
    "exception": (FaultType.CODE_EXCEPTION, 0.6),
}


def strength(score: float, threshold: float) -> float:
    """Map a z-like score to a bounded evidence weight: 0.69 at the threshold, ~2.6 at the cap."""
    return math.log1p(max(score, 0.0) / threshold)


def _name(finding: SeriesFinding) -> str:
    return finding.signal.name.lower().replace(".", "_").replace("-", "_")


def fault_scores(
    metrics: Iterable[SeriesFinding],
    logs: Iterable[LogFinding],
    threshold: float,
    blamed_by_callers: float = 0.0,
    settle_s: float = float("inf"),
    external: bool = False,
    waited_on: float = 0.0,
) -> dict[FaultType, float]:
    """Evidence for each fault type at one service.

    ``external`` marks a service with no resource series of its own (a third-party API, a
    managed database): whatever goes wrong there is, for us, that dependency failing.

    ``blamed_by_callers`` counts peers' errors that name this service as unreachable;
    ``waited_on``, callers' client-side waits on it: slow answers from a service whose own
    serving latency stayed flat point at its network path.
    Findings that begin more than ``settle_s`` after the service's first anomaly are
    consequences (throttling once errors pile up), so they count half.
    """
    metrics = list(metrics)
    first = min((f.onset for f in metrics), default=0.0)
    matched = [(f, _rule_of(f)) for f in metrics]
    cpu_rises = [
        f
        for f, rule in matched
        if rule is not None
        and rule.fault is FaultType.CPU_SATURATION
        and f.direction > 0
        and not f.far_below_limit
    ]
    scores: dict[FaultType, float] = dict.fromkeys(FaultType, 0.0)
    errors = latency = serving = went_silent = pegged = 0.0
    slowdown = 1.0  # the largest incident/baseline ratio of a rising latency series
    for f, rule in matched:
        w = strength(f.score, threshold) * (0.5 if f.onset - first > settle_s else 1.0)
        if f.kind is SignalKind.ERRORS and f.direction > 0:
            errors = max(errors, w)
        if f.kind is SignalKind.LATENCY and f.direction > 0:
            latency = max(latency, w)
            if side_of(f.signal) != "client":
                serving = max(serving, w)
                slowdown = max(slowdown, _ratio(f))
        if f.at_limit:
            pegged = max(pegged, w)
        if f.direction == 0 or (f.kind is SignalKind.TRAFFIC and _dropped_to_zero(f)):
            went_silent = max(went_silent, w)
        # CPU far below its limit is a busier pod, not a saturated one (engine.headroom).
        if rule is not None and not f.far_below_limit:
            weight = rule.weight
            if rule.fault is FaultType.MEMORY_LEAK and _hog_working_set(f, cpu_rises):
                weight *= WORKING_SET_WEIGHT
            scores[rule.fault] = max(scores[rule.fault], w * weight)
    error_logs = stopped = 0.0
    for lf in logs:
        w = strength(lf.score, threshold)
        if lf.pattern == "vanished":
            went_silent = max(went_silent, w)
            continue
        if lf.pattern in ("stopped", "unreached"):
            # The service still logs, but one operation no longer gets this far: it fails.
            stopped = max(stopped, w)
            continue
        if lf.level in ("ERROR", "CRITICAL"):
            error_logs = max(error_logs, w)
        for signature in lf.signatures:
            if signature in LOG_RULES:
                fault, weight = LOG_RULES[signature]
                scores[fault] = max(scores[fault], w * weight)
    if pegged:
        # Pegged at its CPU limit: its own slowness and failures are what starving does to it.
        cpu = FaultType.CPU_SATURATION
        scores[cpu] = max(scores[cpu], pegged, serving, errors)
    # A service that is alive enough to log its own exceptions is failing, not gone.
    if scores[FaultType.CODE_EXCEPTION] > 0:
        blamed_by_callers *= 0.5
    scores[FaultType.DEPENDENCY_OUTAGE] = max(went_silent * 1.3, blamed_by_callers)
    if scores[FaultType.BAD_DEPLOY] and (errors or error_logs):
        scores[FaultType.BAD_DEPLOY] += 0.5 * max(error_logs, errors, 0.7)
    # Symptoms alone: errors read as a code fault, serving latency alone as the network. They are
    # the fallback reading: a specific signature (a resource, a deploy, resets) outweighs them.
    specific = max(scores.values())
    damp = 0.6 if specific > 0.35 else 1.0
    symptom_errors = (0.45 * errors + 0.25 * max(error_logs, stopped)) * damp
    scores[FaultType.CODE_EXCEPTION] = max(scores[FaultType.CODE_EXCEPTION], symptom_errors)
    if errors and slowdown >= 3:
        # Failing requests that are also several times slower point at the network
        # (retransmits, resets, timeouts); a code path that throws fails fast.
        scores[FaultType.PACKET_LOSS] = max(
            scores[FaultType.PACKET_LOSS], (0.45 * errors + 0.25 * latency) * damp
        )
    if serving > errors:
        scores[FaultType.NETWORK_LATENCY] = max(
            scores[FaultType.NETWORK_LATENCY], 0.5 * serving * damp
        )
    if waited_on and not serving:
        scores[FaultType.NETWORK_LATENCY] = max(scores[FaultType.NETWORK_LATENCY], 0.6 * waited_on)
    if external:
        scores[FaultType.DEPENDENCY_OUTAGE] = max(
            scores[FaultType.DEPENDENCY_OUTAGE], 1.1 * max(errors, latency, error_logs)
        )
    return scores


def _rule_of(f: SeriesFinding) -> MetricRule | None:
    """The first metric rule whose name and direction the finding matches."""
    name = _name(f)
    for rule in METRIC_RULES:
        if rule.name.search(name) and (rule.direction == 0 or f.direction == rule.direction):
            return rule
    return None


def _hog_working_set(memory: SeriesFinding, cpu_rises: list[SeriesFinding]) -> bool:
    """Memory that stepped up as a CPU rise began (within a sample), on the same pod.

    A leak climbs: its memory grows sample after sample, and CPU, if it moves at all, follows
    (collection pauses). A process that starts burning CPU brings its working set with it: the
    memory is at its new level at once, as the CPU rose. That memory is the hog's,
    not a leak.
    """
    if memory.direction <= 0 or memory.level is None or memory.baseline.median is None:
        return False
    step = memory.signal.resolution_s or 60.0
    together = any(
        c.signal.pod == memory.signal.pod and abs(c.onset - memory.onset) <= step for c in cpu_rises
    )
    if not together:
        return False
    stamps, values = memory.signal.timestamps, memory.signal.values
    first = values[bisect.bisect_left(stamps, memory.onset)]
    rise = memory.level - memory.baseline.median
    return first is not None and rise > 0 and first - memory.baseline.median >= STEP_SHARE * rise


def _ratio(f: SeriesFinding) -> float:
    """How many times its baseline median the series stood at its (two-sample) peak."""
    base = f.baseline.median
    if base is None or base <= 0:
        return 1.0
    stamps, values = f.signal.timestamps, f.signal.values
    i = bisect.bisect_left(stamps, f.peak)
    held = [v for v in values[i : i + 2] if v is not None]
    return min(held) / base if held else 1.0


def _dropped_to_zero(f: SeriesFinding) -> bool:
    base, inc = f.baseline.median, f.incident.median
    return (
        f.direction < 0 and base is not None and inc is not None and base > 0 and inc <= 0.05 * base
    )


def hypothesize(scores: dict[FaultType, float]) -> FaultType:
    """The best-supported fault type; ``UNKNOWN`` when nothing supports any."""
    best = max(scores, key=lambda k: (scores[k], k.value))
    return best if scores[best] > 0 else FaultType.UNKNOWN
