"""Turn findings into citable :class:`~agent.models.Evidence` with stable ids.

Metric evidence is ``M1, M2, ...`` and log evidence ``L1, L2, ...``, numbered in the order
they support the ranking: the top candidates' strongest findings first, so ``M1`` is the
series that best explains the root cause.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent.engine.detect.logs import LogFinding
from agent.engine.detect.series import SeriesFinding
from agent.engine.service_score import ServiceScore
from agent.models import Evidence, Stats

PER_CANDIDATE_METRICS = 4
PER_CANDIDATE_LOGS = 3
EVIDENCE_CANDIDATES = 5


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def fmt(value: float | None, unit: str = "") -> str:
    """A compact number for reports: 3 significant digits, thousands as k/M."""
    if value is None:
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1e6:
        text = f"{value / 1e6:.3g}M"
    elif magnitude >= 1e4:
        text = f"{value / 1e3:.3g}k"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip() if unit else text


def _metric_evidence(eid: str, f: SeriesFinding) -> Evidence:
    s = f.signal
    unit = s.unit
    if f.direction == 0:
        pattern, what = "vanished", "stopped reporting"
        description = (
            f"{s.series_id} {what} at {_ts(f.onset):%H:%M:%S} (was {fmt(f.baseline.median, unit)})"
        )
    else:
        pattern = "up" if f.direction > 0 else "down"
        shown = f.incident.max if f.direction > 0 else f.incident.median
        description = (
            f"{s.series_id} {pattern} from {fmt(f.baseline.median, unit)} to {fmt(shown, unit)} "
            f"(robust z {f.score:.1f}) from {_ts(f.onset):%H:%M:%S}"
        )
    return Evidence(
        id=eid,
        source="metric",
        service=s.service,
        pod=s.pod,
        signal=s.name,
        signal_kind=f.kind,
        unit=unit,
        pattern=pattern,
        start=_ts(f.onset),
        end=_ts(f.end),
        onset=_ts(f.onset),
        baseline=f.baseline,
        incident=f.incident,
        score=round(f.score, 3),
        description=description,
        link=s.link,
    )


def _log_evidence(eid: str, f: LogFinding) -> Evidence:
    rates = f"{f.baseline_rate:.2g}/min -> {f.incident_rate:.2g}/min"
    what = {
        "new": f"new {f.level} log template ({f.incident_count} lines)",
        "burst": f"{f.level} log template bursting ({rates})",
        "vanished": f"logs went silent ({rates})",
        "stopped": f"log template stopped ({rates})",
        "error_rate": f"share of error lines rose: {f.template}",
    }[f.pattern]
    shown = f"{f.service}: {what}" + (
        f': "{f.template}"' if f.pattern in ("new", "burst", "stopped") else ""
    )
    return Evidence(
        id=eid,
        source="log",
        service=f.service,
        template=f.template,
        sample=f.sample,
        pattern=f.pattern,
        start=_ts(f.onset),
        end=_ts(f.end),
        onset=_ts(f.onset),
        baseline=Stats(mean=f.baseline_rate, count=f.baseline_count),
        incident=Stats(mean=f.incident_rate, count=f.incident_count),
        score=round(f.score, 3),
        description=shown,
        link=f.link,
    )


def build_evidence(
    ranked: list[ServiceScore], limit: int
) -> tuple[list[Evidence], dict[str, list[str]]]:
    """Evidence for the report (at most ``limit``) and each service's evidence ids."""
    metrics: list[SeriesFinding] = []
    logs: list[LogFinding] = []
    for s in ranked[:EVIDENCE_CANDIDATES]:
        metrics += s.metrics[:PER_CANDIDATE_METRICS]
        logs += s.logs[:PER_CANDIDATE_LOGS]
    chosen_m = {id(f) for f in metrics}
    chosen_l = {id(f) for f in logs}
    rest_m = [f for s in ranked for f in s.metrics if id(f) not in chosen_m]
    rest_l = [f for s in ranked for f in s.logs if id(f) not in chosen_l]
    room = max(limit - len(metrics) - len(logs), 0)
    extra = sorted(rest_m + rest_l, key=lambda f: -f.score)[:room]  # type: ignore[operator]
    metrics += [f for f in extra if isinstance(f, SeriesFinding)]
    logs += [f for f in extra if isinstance(f, LogFinding)]
    metrics, logs = metrics[:limit], logs[: max(limit - len(metrics), 0)]

    evidence: list[Evidence] = []
    ids: dict[str, list[str]] = {}
    for n, mf in enumerate(metrics, start=1):
        evidence.append(_metric_evidence(f"M{n}", mf))
        ids.setdefault(mf.service, []).append(f"M{n}")
    for n, lf in enumerate(logs, start=1):
        evidence.append(_log_evidence(f"L{n}", lf))
        ids.setdefault(lf.service, []).append(f"L{n}")
    return evidence, ids
