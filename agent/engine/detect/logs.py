"""Log findings: new, bursting and stopped templates, services going silent, error-rate shifts.

Each line's template comes from :mod:`agent.engine.detect.logshape` (Drain3 over masked headlines);
here templates are tallied per service and level, before and during the incident, and scored.

Rates are per minute of the span the log lines cover, not of the whole window: log shipping
often starts late or stops early (a retention cut, a sampled export), and dividing by minutes
without lines would read a steady service as one that went quiet.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Literal

from agent.engine.detect.logshape import Shapes, headline
from agent.engine.detect.traces import ErrorTraces, TraceOrigin, poisson_z
from agent.models import LogRecord

Pattern = Literal["new", "unbaselined", "burst", "vanished", "stopped", "error_rate", "origin"]
# Templates that appeared in the incident: "unbaselined" when no log line at all lies in the
# baseline, so the template may be as old as the service and only the logs are new.
APPEARED: frozenset[str] = frozenset({"new", "unbaselined", "burst"})
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL", "SEVERE", "PANIC", "ALERT", "EMERGENCY"})
_LEVEL_WEIGHT = {"ERROR": 1.0, "CRITICAL": 1.0, "WARN": 0.7}
SCORE_CAP = 50.0

SIGNATURES: dict[str, re.Pattern[str]] = {
    "oom": re.compile(
        r"out ?of ?memory|\boom|memory limit|killed process|heap space|cannot allocate"
    ),
    "disk": re.compile(
        r"no space left|disk (?:is )?full|disk (?:usage|space)|enospc|quota exceeded|"
        r"read-only file ?system|filesystem .*(?:full|usage)"
    ),
    "pool": re.compile(
        r"\bpool|acquire (?:a )?connection|too many connections|connections? exhausted"
    ),
    "refused": re.compile(
        r"refused|unavailable|no route to host|could not connect|connect(?:ion)? failed|dial tcp|"
        r"name resolution|unreachable|upstream connect|no healthy upstream|not resolve"
    ),
    "reset": re.compile(r"reset|broken pipe|retransmi|packet|checksum|eof"),
    "timeout": re.compile(r"time ?out|timed out|deadline exceeded"),
    "upstream": re.compile(
        r"error (?:calling|from|contacting|talking to)|bad gateway|service unavailable|"
        r"internal server error|unexpected status|upstream"
    ),
    # A line that says a new build is starting or rolled out; not one that mentions an image
    # (a captcha, an upload) or releases a lock.
    "deploy": re.compile(
        r"deploy|rollout|new version|version v?\d|releas(?:e|ed|ing) v?\d|new release|"
        r"starting .*v\d|(?:pull(?:ing|ed)?|new) image|image (?:pull|tag|update|change)"
    ),
    "exception": re.compile(
        r"exception|traceback|panic|stack ?trace|segfault|nil pointer|\berror:"
    ),
    "slow": re.compile(r"slow|took <\*>|latency|exceeded threshold"),
    "cpu": re.compile(r"cpu|throttl|starv"),
}


@dataclass(frozen=True)
class LogFinding:
    service: str
    pattern: Pattern
    template: str
    level: str
    baseline_count: int
    incident_count: int
    baseline_rate: float  # lines per minute
    incident_rate: float
    score: float
    onset: float
    end: float
    sample: str | None
    signatures: frozenset[str]
    mentions: frozenset[str]  # other services named in the template, e.g. a refused peer
    link: str | None = None  # where to read these lines (a Kibana Discover URL), if known
    logs_start: float | None = None  # the first line, when none lies before the incident
    # "origin": services that logged errors later in the same traces (they called it)
    followers: frozenset[str] = frozenset()


def _drop_z(observed: float, expected: float) -> float:
    """How surprising it is to see only ``observed`` lines where ``expected`` were due
    (the Poisson deviance, on a z-like scale)."""
    if observed >= expected:
        return 0.0
    tail = observed * math.log(observed / expected) if observed > 0 else 0.0
    return math.sqrt(2.0 * (expected - observed + tail))


# A template that stopped counts only if this many lines were due and at most this share came.
STOPPED_MIN_EXPECTED = 6.0
STOPPED_MAX_SHARE = 0.25

# Signatures that say what broke; a never-seen line that carries one is news even twice.
FAULT_SIGNATURES = frozenset({"oom", "disk", "pool", "exception"})
NOVELTY_GAIN = 1.6


def _novelty(tally: _Tally, rates: _Rates) -> float:
    """How unlikely it is that a template seen only in the incident is just rare.

    A template with a steady rate lands all its ``k`` lines in the incident part with
    probability ``q**k``, ``q`` being the incident's share of the window; this is that
    surprise on a z-like scale. Two lines of a rare warning in a window whose baseline is as
    short as its incident are a coin toss, not news.
    """
    share = rates.inc_minutes / (rates.inc_minutes + rates.base_minutes)
    return NOVELTY_GAIN * math.sqrt(-2.0 * tally.incident * math.log(share))


def _burst_onset(tally: _Tally, rates: _Rates) -> float:
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


def _signatures(text: str) -> frozenset[str]:
    lowered = text.lower()
    return frozenset(name for name, rx in SIGNATURES.items() if rx.search(lowered))


@dataclass
class _Tally:
    baseline: int = 0
    incident: int = 0
    first_incident: float = math.inf
    sample: str | None = None
    times: list[float] = field(default_factory=list)  # of the incident's lines


@dataclass(frozen=True)
class _Rates:
    base_minutes: float
    inc_minutes: float
    split: float
    end: float
    logs_start: float | None = None  # set when the baseline holds no line: nothing is "new"
    logs_end: float | None = None  # the last line, set with logs_start

    @property
    def scale(self) -> float:
        return self.inc_minutes / self.base_minutes


def mine_logs(
    records: list[LogRecord],
    start: float,
    split: float,
    end: float,
    burst_ratio: float = 3.0,
    threshold: float = 4.0,
    services: frozenset[str] = frozenset(),
) -> list[LogFinding]:
    """Log findings for the incident part ``[split, end]`` against the baseline before it."""
    shapes = Shapes()
    traces = ErrorTraces()
    tallies: dict[tuple[str, int, str], _Tally] = {}
    links: dict[str, str] = {}
    first, last = math.inf, -math.inf
    for record in records:
        t = record.timestamp.timestamp()
        if t < start or t > end:
            continue
        if t < first:
            first = t
        if t > last:
            last = t
        if record.service not in links and isinstance(link := record.fields.get("link"), str):
            links[record.service] = link
        shape = shapes.of(record.message)
        level = record.level
        if shape.embedded_level and level in ("INFO", "DEBUG"):
            level = shape.embedded_level
        if record.trace_id:
            traces.passed(record.trace_id, record.service)
            if level in ERROR_LEVELS:
                traces.add(record.trace_id, t, record.service, shape.cluster, record.message)
        key = (record.service, shape.cluster, level)
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = _Tally()
        if t < split:
            tally.baseline += 1
        else:
            tally.incident += 1
            tally.times.append(t)
            if t < tally.first_incident:
                tally.first_incident = t
                tally.sample = record.message

    start, end = _covered(first, last, start, split, end)
    rates = _Rates(
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
    shifts, silent = _service_findings(tallies, rates, threshold)
    # A service that went silent as a whole says so once, not once per template.
    findings = [f for f in findings if not (f.pattern == "stopped" and f.service in silent)]
    findings.extend(shifts)
    origins = (
        _origin_finding(o, shapes.templates.template(o.cluster), rates)
        for o in traces.origins(split, rates.base_minutes, rates.inc_minutes, threshold)
    )
    findings.extend(f for f in origins if f.score >= threshold)
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
    tally: _Tally,
    rates: _Rates,
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
    signatures = _signatures(f"{template} {sample or ''}")
    mentions = _mentions(template, services, service)
    weight = _LEVEL_WEIGHT.get(level, 0.4)
    onset = tally.first_incident
    if tally.incident <= STOPPED_MAX_SHARE * expected and expected >= STOPPED_MIN_EXPECTED:
        pattern, raw, weight, onset = "stopped", _drop_z(tally.incident, expected), 1.0, rates.split
        # What a stopped line says is not news, nor a peer's failure: no sample, no mentions.
        sample, mentions, signatures = None, frozenset(), _signatures(template)
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
        incident_rate=tally.incident / rates.inc_minutes,
        score=score,
        onset=onset,
        end=rates.end,
        sample=sample,
        signatures=signatures,
        mentions=mentions,
        logs_start=rates.logs_start,
    )


# How surprising (z-like) a late start within the logs must be for an origin to count in full.
LATE_START_Z = 2.0


def _late_start(count: int, onset: float, rates: _Rates) -> float:
    """What share of its score a service's first errors of traces keep when the logs begin
    after the split, so no baseline line says whether those errors are new.

    The logs' own first stretch is then the baseline: ``count`` traces that failed at a steady
    rate all land after the first one, ``onset - logs_start`` into a span of ``T`` seconds, with
    probability ``((T - gap) / T) ** count``. Errors there from the first line on may be as old
    as the service (one that fails some look-ups in every incident); errors that
    began while the logs were already flowing are news. (Applied to unbaselined templates
    too, it cost fault types and ranks on the real alert suites: docs/benchmarks.md.)
    """
    if rates.logs_start is None or rates.logs_end is None:
        return 1.0
    span = rates.logs_end - rates.logs_start
    gap = onset - rates.logs_start
    if span <= 0 or gap <= 0 or gap >= span:
        return 0.0 if gap <= 0 else 1.0
    z = math.sqrt(-2.0 * count * math.log((span - gap) / span))
    return min(1.0, z / LATE_START_Z)


def _origin_finding(origin: TraceOrigin, template: str, rates: _Rates) -> LogFinding:
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
        incident_rate=origin.incident_count / rates.inc_minutes,
        score=min(SCORE_CAP, origin.score)
        * _late_start(origin.incident_count, origin.onset, rates),
        onset=origin.onset,
        end=rates.end,
        sample=headline(origin.sample) or None,
        signatures=_signatures(template),
        mentions=frozenset(),
        followers=origin.followers,
    )


def _service_findings(
    tallies: dict[tuple[str, int, str], _Tally], rates: _Rates, threshold: float
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
    service: str, counts: Counter[str], rates: _Rates, threshold: float
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
