"""What log mining says, and the counts it works from.

A :class:`LogFinding` is one thing the logs say about a service: a template that is new,
bursting or stopped, a service that went silent or logs a larger share of errors, or one
where failing requests began. :class:`Tally` and :class:`Rates` are the per-template counts
and the minutes they cover, shared by the template findings (:mod:`.logs`) and the
whole-service ones (:mod:`.servicelogs`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

Pattern = Literal[
    "new", "unbaselined", "burst", "vanished", "stopped", "error_rate", "origin", "unreached"
]
# Templates that appeared in the incident: "unbaselined" when no log line at all lies in the
# baseline, so the template may be as old as the service and only the logs are new.
APPEARED: frozenset[str] = frozenset({"new", "unbaselined", "burst"})
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL", "SEVERE", "PANIC", "ALERT", "EMERGENCY"})
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
    # "origin": services that logged errors later in the same traces (they called it);
    # "unreached": the services whose traces it dropped out of
    followers: frozenset[str] = frozenset()


def signatures_of(text: str) -> frozenset[str]:
    lowered = text.lower()
    return frozenset(name for name, rx in SIGNATURES.items() if rx.search(lowered))


@dataclass
class Tally:
    baseline: int = 0
    incident: int = 0
    first_incident: float = math.inf
    sample: str | None = None
    times: list[float] = field(default_factory=list)  # of the incident's lines


@dataclass(frozen=True)
class Rates:
    base_minutes: float
    inc_minutes: float
    split: float
    end: float
    logs_start: float | None = None  # set when the baseline holds no line: nothing is "new"
    logs_end: float | None = None  # the last line, set with logs_start

    @property
    def scale(self) -> float:
        return self.inc_minutes / self.base_minutes

    @property
    def covered_minutes(self) -> float:
        """The minutes the incident's lines can be counted over: where the logs begin after the
        split, from their first line to their last, not the whole incident part (a rate over
        minutes without lines would understate it)."""
        if self.logs_start is None or self.logs_end is None:
            return self.inc_minutes
        return max((self.logs_end - self.logs_start) / 60.0, 1e-6)
