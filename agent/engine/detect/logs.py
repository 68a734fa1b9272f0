"""Log findings: new, bursting and stopped templates, and (from :mod:`.servicelogs`) services
going silent, error-share shifts and where failing traces began.

Each line's template comes from :mod:`agent.engine.detect.logshape` (Drain3 over masked headlines);
here templates are tallied per service and level, before and during the incident, and scored.

Rates are per minute of the span the log lines cover, not of the whole window: log shipping
often starts late or stops early (a retention cut, a sampled export), and dividing by minutes
without lines would read a steady service as one that went quiet.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

from agent.engine.detect.companions import Companions
from agent.engine.detect.logfinding import (
    ERROR_LEVELS,
    SCORE_CAP,
    LogFinding,
    Pattern,
    Rates,
    Tally,
    signatures_of,
)
from agent.engine.detect.logshape import Shapes, headline
from agent.engine.detect.servicelogs import missing_finding, origin_finding, service_findings
from agent.engine.detect.traces import ErrorTraces, poisson_z
from agent.models import LogRecord


def _drop_z(observed: float, expected: float) -> float:
    """How surprising it is to see only ``observed`` lines where ``expected`` were due
    (the Poisson deviance, on a z-like scale)."""
    if observed >= expected:
        return 0.0
    tail = observed * math.log(observed / expected) if observed > 0 else 0.0
    return math.sqrt(2.0 * (expected - observed + tail))


_LEVEL_WEIGHT = {"ERROR": 1.0, "CRITICAL": 1.0, "WARN": 0.7}

# A template that stopped counts only if this many lines were due and at most this share came.
STOPPED_MIN_EXPECTED = 6.0
STOPPED_MAX_SHARE = 0.25

# Signatures that say what broke; a never-seen line that carries one is news even twice.
FAULT_SIGNATURES = frozenset({"oom", "disk", "pool", "exception"})
NOVELTY_GAIN = 1.6


def _novelty(tally: Tally, rates: Rates) -> float:
    """How unlikely it is that a template seen only in the incident is just rare.

    A template with a steady rate lands all its ``k`` lines in the incident part with
    probability ``q**k``, ``q`` being the incident's share of the window; this is that
    surprise on a z-like scale. Two lines of a rare warning in a window whose baseline is as
    short as its incident are a coin toss, not news.
    """
    share = rates.inc_minutes / (rates.inc_minutes + rates.base_minutes)
    return NOVELTY_GAIN * math.sqrt(-2.0 * tally.incident * math.log(share))


def _burst_onset(tally: Tally, rates: Rates) -> float:
    """When a template that was already there began to come faster (Poisson CUSUM).

    Its first line in the incident part says nothing: it was due anyway. The onset is the
    line time that best splits the incident into the baseline rate before and a higher rate
    after it.
    """
    times = sorted(tally.times)
    before = tally.baseline / (rates.base_minutes * 60.0)
    after = len(times) / max(rates.end - rates.split, 1e-6)
    if after <= before or before <= 0:
        return times[0]
    log_ratio = math.log(after / before)
    best, onset = -math.inf, times[0]
    for i, t in enumerate(times):
        gain = (len(times) - i) * log_ratio - (after - before) * (rates.end - t)
        if gain > best:
            best, onset = gain, t
    return onset


def _mentions(template: str, services: frozenset[str], own: str) -> frozenset[str]:
    lowered = template.lower()
    return frozenset(s for s in services if s != own and len(s) > 2 and s.lower() in lowered)


def _in_time_order(record: LogRecord) -> tuple[datetime, str, str]:
    return record.timestamp, record.service, record.message


def mine_logs(
    records: list[LogRecord],
    start: float,
    split: float,
    end: float,
    burst_ratio: float = 3.0,
    threshold: float = 4.0,
    services: frozenset[str] = frozenset(),
    onset: float | None = None,
) -> list[LogFinding]:
    """Log findings for the incident part ``[split, end]`` against the baseline before it.

    ``onset``, where the data show the incident began when only an alert dates it, is where
    requests are compared (:mod:`.companions`) if the logs begin after ``split``."""
    # Drain's templates, and which service logged first in a trace, depend on the order lines
    # are read: read them in time order (ties by service and text), whatever order they came.
    records = sorted(records, key=_in_time_order)
    shapes = Shapes()
    traces = ErrorTraces()
    companions = Companions()
    tallies: dict[tuple[str, int, str], Tally] = {}
    links: dict[str, str] = {}
    first, last = math.inf, -math.inf
    shape_of, tally_of = shapes.of, tallies.get  # bound once, called for every line
    for record in records:
        t = record.timestamp.timestamp()
        if t < start or t > end:
            continue
        if t < first:
            first = t
        if t > last:
            last = t
        service = record.service
        fields = record.fields
        if fields and service not in links and isinstance(link := fields.get("link"), str):
            links[service] = link
        shape = shape_of(record.message)
        level = record.level
        if shape.embedded_level and level in ("INFO", "DEBUG"):
            level = shape.embedded_level
        if record.trace_id:
            companions.passed(record.trace_id, t, service)
            if level in ERROR_LEVELS:
                traces.add(record.trace_id, t, service, shape.cluster, record.message)
        key = (service, shape.cluster, level)
        tally = tally_of(key)
        if tally is None:
            tally = tallies[key] = Tally()
        if t < split:
            tally.baseline += 1
        else:
            tally.incident += 1
            tally.times.append(t)
            if t < tally.first_incident:
                tally.first_incident = t
                tally.sample = record.message

    start, end = _covered(first, last, start, split, end)
    rates = Rates(
        max((split - start) / 60.0, 1e-6),
        max((end - split) / 60.0, 1e-6),
        split,
        end,
        first if split <= first < math.inf else None,
        last if split <= first < math.inf else None,
    )
    findings: list[LogFinding] = []
    told: dict[tuple[str, int, str], LogFinding] = {}
    for (service, tid, level), tally in tallies.items():
        template = shapes.templates.template(tid)
        finding = _template_finding(
            service, template, level, tally, rates, burst_ratio, threshold, services
        )
        if finding is None:
            continue
        if finding.pattern == "stopped":
            findings.append(finding)
            continue
        # One message logged at two statements (the same Drain template at two call sites)
        # is one event told twice: its strongest finding stands for it.
        key = (service, shapes.templates.message_of(tid), finding.pattern)
        if key not in told or finding.score > told[key].score:
            told[key] = finding
    findings.extend(told.values())
    shifts, silent = service_findings(tallies, rates, threshold)
    # A service that went silent as a whole says so once, not once per template.
    findings = [f for f in findings if not (f.pattern == "stopped" and f.service in silent)]
    findings.extend(shifts)
    origins = (
        origin_finding(o, shapes.templates.template(o.cluster), rates)
        for o in traces.origins(split, rates.base_minutes, rates.inc_minutes, threshold, companions)
    )
    findings.extend(f for f in origins if f.score >= threshold)
    compared = split if rates.logs_start is None else onset
    if compared is not None:
        found = companions.missing(compared, threshold)
        findings.extend(missing_finding(m, rates, compared) for m in found)
    if links:
        findings = [replace(f, link=links.get(f.service)) for f in findings]
    findings.sort(key=lambda f: (-f.score, f.onset, f.service, f.template))
    return findings


def _covered(
    first: float, last: float, start: float, split: float, end: float
) -> tuple[float, float]:
    """The part of ``[start, end]`` that the log lines cover, given the first and last line in
    it. A gap of under a minute at either edge is ordinary quiet, not an edge of the data.
    Lines on only one side of the split say nothing about coverage (a few lines of a new
    error, or a service that went quiet), so they keep the whole window."""
    if not first < split < last:
        return start, end
    return (first if first - start > 60.0 else start), (last if end - last > 60.0 else end)


def _template_finding(
    service: str,
    template: str,
    level: str,
    tally: Tally,
    rates: Rates,
    burst_ratio: float,
    threshold: float,
    services: frozenset[str],
) -> LogFinding | None:
    """A template that is new, bursting, or stopped.

    Stopped: it came steadily and (nearly) stopped, so an operation no longer gets as far as
    this line, typically because it now throws earlier. Whether the rest of the service still
    logs is decided with the whole service's tally (a service that went silent as a whole is
    a different finding)."""
    expected = tally.baseline * rates.scale
    pattern: Pattern
    sample = headline(tally.sample or "") or None
    signatures = signatures_of(f"{template} {sample or ''}")
    mentions = _mentions(template, services, service)
    weight = _LEVEL_WEIGHT.get(level, 0.4)
    onset = tally.first_incident
    if tally.incident <= STOPPED_MAX_SHARE * expected and expected >= STOPPED_MIN_EXPECTED:
        pattern, raw, weight, onset = "stopped", _drop_z(tally.incident, expected), 1.0, rates.split
        # What a stopped line says is not news, nor a peer's failure: no sample, no mentions.
        sample, mentions, signatures = None, frozenset(), signatures_of(template)
    elif tally.incident == 0:
        return None
    elif tally.baseline == 0 and tally.incident >= 2:
        raw = 3.0 + 2.0 * math.sqrt(tally.incident)
        if not signatures & FAULT_SIGNATURES:
            raw = min(raw, _novelty(tally, rates))
        pattern = "new" if rates.logs_start is None else "unbaselined"
    elif tally.incident >= 3 and tally.incident >= burst_ratio * (expected + 0.5):
        pattern, raw = "burst", poisson_z(tally.incident, expected)
        onset = _burst_onset(tally, rates)
    else:
        return None
    score = min(SCORE_CAP, raw) * weight
    if score < threshold:
        return None
    return LogFinding(
        service=service,
        pattern=pattern,
        template=template,
        level=level,
        baseline_count=tally.baseline,
        incident_count=tally.incident,
        baseline_rate=tally.baseline / rates.base_minutes,
        incident_rate=tally.incident / rates.covered_minutes,
        score=score,
        onset=onset,
        end=rates.end,
        sample=sample,
        signatures=signatures,
        mentions=mentions,
        logs_start=rates.logs_start,
    )
