"""Turn findings into citable :class:`~agent.models.Evidence` with stable ids.

Metric evidence is ``M1, M2, ...`` and log evidence ``L1, L2, ...``, numbered in the order
they support the ranking: the top candidates' strongest findings first, so ``M1`` is the
series that best explains the root cause.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from agent.engine.detect.logfinding import LogFinding
from agent.engine.detect.series import Z_CAP, SeriesFinding
from agent.engine.service_score import ServiceScore
from agent.models import Evidence, Stats
from agent.units import (
    baseline_text,
    change_phrase,
    change_ratio,
    duration_text,
    format_value,
    unit_of,
)

PER_CANDIDATE_METRICS = 4
PER_CANDIDATE_LOGS = 3
EVIDENCE_CANDIDATES = 5


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _when(f: SeriesFinding) -> str:
    """When the deviation began, and whether later data is needed to trust it."""
    if f.at_data_end:
        return f"at {_ts(f.onset):%H:%M:%S}, the end of the data: later samples must confirm it"
    return f"from {_ts(f.onset):%H:%M:%S}"


def _metric_description(f: SeriesFinding, unit: str) -> str:
    """One sentence whose numbers carry the finding: the level a rise or dip held against the
    baseline median, how long it lasted, and a one-sample spike called a spike."""
    s = f.signal
    if f.versus is not None:
        p = math.exp(-(f.score**2) / 2)
        who = (
            f"{s.service}'s new pods (e.g. {s.series_id})"
            if s.pod
            else f"{s.series_id} after the change"
        )
        return (
            f"{who}: median "
            f"{format_value(f.level, unit)} vs {baseline_text(f.baseline.median, f.level, unit)}"
            f"{change_ratio(f.baseline.median, f.level)} on {f.versus} "
            f"(one-sided Mann-Whitney p = {p:.1g})"
        )
    if f.direction == 0:
        return (
            f"{s.series_id} stopped reporting at {_ts(f.onset):%H:%M:%S} "
            f"(was {format_value(f.baseline.median, unit)})"
        )
    change = change_phrase(f.baseline.median, f.level, unit)
    z = _z_text(_z(f)) + ("; counted for running at its CPU limit" if f.at_limit else "")
    if f.run <= 1:
        verb = "spiked" if f.direction > 0 else "dipped for one sample"
        return f"{s.series_id} {verb} {change} {_when(f)} ({z})"
    verb = "rose" if f.direction > 0 else "dipped"
    lasted = duration_text((f.until or f.onset) - f.onset)
    return f"{s.series_id} {verb} {change} for {lasted} {_when(f)} ({z})"


def _z(f: SeriesFinding) -> float:
    return f.score if f.z is None else f.z


def _z_text(z: float) -> str:
    """The robust z, or that it reached the cap: beyond it the detector stops counting, so a
    quoted 50.0 would claim a precision the number does not have."""
    return f"robust z {z:.1f}" if z < Z_CAP else f"robust z ≥ {Z_CAP:.0f}, the cap"


def _metric_evidence(eid: str, f: SeriesFinding) -> Evidence:
    s = f.signal
    unit = unit_of(s.name, s.unit)
    pattern = "vanished" if f.direction == 0 else "up" if f.direction > 0 else "down"
    if f.versus is not None:
        pattern = "canary"
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
        end=_ts(f.until if f.until is not None else f.end),
        onset=_ts(f.onset),
        baseline=f.baseline,
        incident=f.incident,
        value=f.level,
        samples=f.run or None,
        at_data_end=f.at_data_end,
        score=round(f.score, 3),
        description=_metric_description(f, unit),
        link=s.link,
    )


# Log findings about one template quote it; whole-service ones (silence, error share) do not.
QUOTED_PATTERNS = frozenset({"new", "unbaselined", "burst", "stopped", "origin"})


def _log_evidence(eid: str, f: LogFinding) -> Evidence:
    rates = f"{f.baseline_rate:.2g}/min -> {f.incident_rate:.2g}/min"
    what = {
        "new": f"new {f.level} log template ({f.incident_count} lines)",
        "unbaselined": (
            f"{f.level} log template, {f.incident_count} lines; logs start at "
            f"{_ts(f.logs_start or f.onset):%H:%M:%S}, after the baseline: cannot tell new from old"
        ),
        "burst": f"{f.level} log template bursting ({rates})",
        "vanished": f"logs went silent ({rates})",
        "stopped": f"log template stopped ({rates})",
        "error_rate": f"share of error lines rose: {f.template}",
        "unreached": (
            f"its lines dropped out of the requests of {', '.join(sorted(f.followers)[:3])}"
            + (f" and {len(f.followers) - 3} more" if len(f.followers) > 3 else "")
            + f": in {f.incident_count} of the traces where {f.baseline_count} were due"
        ),
        "origin": (
            f"first to log an error in {f.incident_count} traces ({_origin_rates(f)})"
            + (f", then {', '.join(sorted(f.followers)[:3])} logged theirs" if f.followers else "")
        ),
    }[f.pattern]
    shown = f"{f.service}: {what}" + (
        f': "{f.template}"'
        if f.pattern in ("new", "unbaselined", "burst", "stopped", "origin")
        else ""
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
        # Where the logs begin after the baseline, it holds no line: no rate was measured there.
        baseline=Stats(
            mean=None if f.logs_start is not None else f.baseline_rate, count=f.baseline_count
        ),
        incident=Stats(mean=f.incident_rate, count=f.incident_count),
        score=round(f.score, 3),
        description=shown,
        link=f.link,
    )


def _origin_rates(f: LogFinding) -> str:
    """The rates an error-origin finding rests on. Where the logs begin after the baseline,
    the comparison is with their own first stretch, before the service's first such trace."""
    if f.logs_start is None:
        return f"{f.baseline_rate:.2g}/min -> {f.incident_rate:.2g}/min"
    return (
        f"{f.incident_rate:.2g}/min while logs ran; they start at {_ts(f.logs_start):%H:%M:%S}, "
        f"after the baseline, and none came in their first {duration_text(f.onset - f.logs_start)}"
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
