"""Hand-made engine findings for the ranking tests: a metric or log finding in one call."""

from __future__ import annotations

from agent.engine.detect.logfinding import LogFinding
from agent.engine.detect.series import SeriesFinding
from agent.models import Signal, SignalKind, Stats

T0 = 1_767_225_600.0
THR = 4.0


def metric(
    service: str,
    name: str,
    score: float,
    onset: float = T0,
    direction: int = 1,
    kind: SignalKind | None = None,
    base: float = 1.0,
    inc: float = 5.0,
    end: float | None = None,
) -> SeriesFinding:
    from agent.engine.detect.kinds import infer_kind

    signal = Signal(service=service, name=name, timestamps=[T0], values=[1.0])
    return SeriesFinding(
        signal=signal,
        kind=kind or infer_kind(name),
        score=score,
        direction=direction,
        onset=onset,
        peak=onset,
        end=onset + 600 if end is None else end,
        baseline=Stats(median=base, count=10),
        incident=Stats(median=inc, max=inc, count=5),
    )


def log_finding(
    service: str,
    template: str,
    score: float,
    onset: float = T0,
    level: str = "ERROR",
    pattern: str = "new",
    signatures: frozenset[str] = frozenset(),
    mentions: frozenset[str] = frozenset(),
) -> LogFinding:
    return LogFinding(
        service,
        pattern,
        template,
        level,
        0,
        10,
        0.0,
        1.0,
        score,
        onset,  # type: ignore[arg-type]
        onset + 600,
        template,
        signatures,
        mentions,
    )
