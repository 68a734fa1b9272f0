"""A candidate service's standing: its findings, the weight each one carries as evidence of
a cause, and the few questions every ranking rule asks of them (when did its trouble begin,
which golden signals went bad, does it crash).

A finding's weight says whether its kind reads as a cause (saturated resources, changes, the
service going silent) or as a symptom (latency, errors, traffic); a service's strength adds
its three strongest weights with decaying factors, so one huge series does not win alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from agent.engine.detect.kinds import CAUSE_KINDS, host_level, side_of
from agent.engine.detect.logfinding import APPEARED, LogFinding
from agent.engine.detect.series import SeriesFinding
from agent.engine.headroom import FAR_WEIGHT
from agent.engine.hypothesis import strength
from agent.models import FaultType, SignalKind

# Findings at least this share of the strongest one date a service's (or the alert's)
# trouble; weaker ones are too often noise that happens to sit earlier.
CLEAR_SHARE = 0.5
HOST_WEIGHT = 0.3  # of a node-level series (its host's, not its own): see host_level
# Log findings that date an event (a template appearing, requests starting to fail there).
DATED_PATTERNS = APPEARED | {"origin"}
BLAME_SIGNATURES = frozenset({"refused", "timeout", "reset", "upstream"})
_CRASH = re.compile(r"restart|oom|crash|killed", re.IGNORECASE)


@dataclass
class ServiceScore:
    service: str
    score: float = 0.0
    onset: float | None = None
    fault_type: FaultType = FaultType.UNKNOWN
    metrics: list[SeriesFinding] = field(default_factory=list)
    logs: list[LogFinding] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    strength: float = 0.0
    waited_by: list[str] = field(default_factory=list)  # callers whose waits point here
    # A suspect change's: the golden signals its new version made worse, on its own pods or
    # at its callers, and the callees whose requests it stopped sending.
    changed_worse: frozenset[SignalKind] = frozenset()
    dropped_calls: frozenset[str] = frozenset()
    change_bonus: tuple[float, float] | None = None  # (when, how much) a suspect change adds
    # ... and how far its own worse serving series stepped up, by kind (engine.sizes)
    changed_steps: dict[SignalKind, float] = field(default_factory=dict)


def is_wait(f: SeriesFinding) -> bool:
    """A rising client-side latency or error series: the service waiting on a dependency."""
    return (
        f.direction > 0
        and f.kind in (SignalKind.LATENCY, SignalKind.ERRORS)
        and side_of(f.signal) == "client"
    )


def metric_weight(f: SeriesFinding, visible: float | None = None) -> float:
    """How much one metric finding says "this is where it started".

    ``visible`` is when the alerted services' symptoms began: a change (deploy, config,
    rollback) that lands after that is a reaction to the incident or unrelated to it.
    """
    if f.kind is SignalKind.CHANGE and visible is not None and f.onset > visible:
        return 0.25
    if f.kind in (SignalKind.LATENCY, SignalKind.ERRORS) and side_of(f.signal) == "client":
        return 0.2  # what it waits on: evidence about a dependency (engine.waits), not itself
    if f.pinned:
        return 0.2  # a quantile over next to no requests (detect.series._pinned)
    if f.at_data_end:
        return 0.5 * _kind_weight(f)  # one sample at the very end: a start or a glitch
    if host_level(f.signal):
        return HOST_WEIGHT * _kind_weight(f)  # the node's, shared by every pod on it
    if f.far_below_limit:
        return FAR_WEIGHT * _kind_weight(f)  # more work, not short of CPU (engine.headroom)
    return _kind_weight(f)


def _kind_weight(f: SeriesFinding) -> float:
    if f.direction == 0:
        return 1.1  # the data stopped: the service (or its exporter) is down
    if f.kind in CAUSE_KINDS:
        return 1.0 if f.direction > 0 or f.kind is SignalKind.CHANGE else 0.35
    return {
        SignalKind.ERRORS: 0.75,
        SignalKind.LATENCY: 0.65,
        SignalKind.TRAFFIC: 0.35 if f.direction > 0 else 0.5,
    }.get(f.kind, 0.5)


def log_weight(f: LogFinding) -> float:
    if f.pattern == "vanished":
        return 0.9
    if f.pattern == "origin":
        # Requests began to fail here; callers' errors came later in those traces. A first
        # error that says it waited or could not connect (a timeout, a refused call) began
        # here but is about the peer it waited on.
        return 0.9 * (0.4 if f.signatures & BLAME_SIGNATURES else 1.0)
    if f.pattern in ("stopped", "unreached"):
        return 0.6  # an operation stopped getting this far: it fails before, or is not called
    base = 0.7 if f.level in ("ERROR", "CRITICAL") else 0.45
    # A peer's "connection refused" is about someone else; it is weaker evidence here.
    return base * (0.4 if blames(f) else 1.0)


def _combined(items: list[float]) -> float:
    items = sorted(items, reverse=True)[:3]
    return sum(w * d for w, d in zip(items, (1.0, 0.5, 0.25), strict=False))


def strength_by(
    s: ServiceScore, cutoff: float | None, threshold: float, visible: float | None = None
) -> float:
    """The service's evidence strength from findings that began by ``cutoff`` (all: None),
    and what a suspect change of it adds where the change came by then."""
    at, bonus = s.change_bonus or (math.inf, 0.0)
    changed = bonus if cutoff is None or at <= cutoff else 0.0
    weights = [
        strength(f.score, threshold) * metric_weight(f, visible)
        for f in s.metrics
        if cutoff is None or f.onset <= cutoff
    ]
    weights += [
        strength(f.score, threshold) * log_weight(f)
        for f in s.logs
        if cutoff is None or f.onset <= cutoff
    ]
    return _combined(weights) + changed


def onset_of(metrics: list[SeriesFinding], logs: list[LogFinding]) -> float | None:
    """When the service's trouble began. Window-level log statistics (an error share, logs
    going quiet) are dated at the window's split, not at an event, so they date nothing."""
    if metrics:
        clear = CLEAR_SHARE * max(f.score for f in metrics)
        return min(f.onset for f in metrics if f.score >= clear)
    return min((f.onset for f in logs if f.pattern in DATED_PATTERNS), default=None)


def blames(f: LogFinding) -> bool:
    """An error about reaching a peer (not about a local pool that happens to name it)."""
    return bool(
        f.mentions
        and f.signatures & BLAME_SIGNATURES
        and "pool" not in f.signatures
        and f.pattern != "vanished"
    )


def symptoms(
    s: ServiceScore, cutoff: float | None = None, since: float | None = None
) -> set[SignalKind]:
    """Which golden signals of the service went bad (between ``since`` and ``cutoff``):
    latency, errors."""

    def within(onset: float) -> bool:
        return (cutoff is None or onset <= cutoff) and (since is None or onset >= since)

    kinds: set[SignalKind] = {
        f.kind
        for f in s.metrics
        if f.kind in (SignalKind.LATENCY, SignalKind.ERRORS) and f.direction > 0 and within(f.onset)
    }
    if any(own_failure(f) and within(f.onset) for f in s.logs):
        kinds.add(SignalKind.ERRORS)
    return kinds | s.changed_worse


def own_failure(f: LogFinding) -> bool:
    """A log finding that says the service itself fails: its error lines came or grew, or one
    of its operations stopped getting as far as a line it used to write."""
    return f.pattern in ("stopped", "unreached") or (
        f.level in ("ERROR", "CRITICAL") and f.pattern != "vanished"
    )


def crashed(f: SeriesFinding) -> bool:
    """A restart or OOM-kill counter that went up. One that went down is a new pod (a
    rollout or a rescheduling) starting its count again, not a crash."""
    return f.direction > 0 and bool(_CRASH.search(f.signal.name))
