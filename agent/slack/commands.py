"""``/rca <service> [last 30m | since 14:05 | 14:05-14:40] [question] [--private]``.

Parsing is pure and strict: a typo in a service name gets "did you mean" suggestions and
the list of known services rather than an analysis of nothing. Clock times are read in the
configured zone and mean the most recent such time, so ``since 23:50`` just after midnight
is yesterday's 23:50.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from agent.errors import UsageError

DEFAULT_LAST = timedelta(minutes=30)
MAX_RANGE = timedelta(days=7)
PRIVATE_FLAGS = frozenset({"--private", "--ephemeral", "-p"})
MAX_SERVICES_LISTED = 40

_DURATION = re.compile(r"^(\d{1,6})\s*(s|sec|m|min|h|hr|d)$", re.IGNORECASE)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}
_CLOCK = r"([01]?\d|2[0-3]):([0-5]\d)"
_CLOCK_ONLY = re.compile(rf"^{_CLOCK}$")
_CLOCK_RANGE = re.compile(rf"^{_CLOCK}\s*[-–]\s*{_CLOCK}$")


class CommandError(UsageError):
    """``/rca`` arguments that cannot work; ``str()`` is the reply the user sees."""

    def __init__(
        self, problem: str, known_services: Sequence[str], suggestions: Sequence[str] = ()
    ):
        self.problem = problem
        self.suggestions = list(suggestions)
        super().__init__(usage(known_services, problem, suggestions))


@dataclass(frozen=True)
class RcaCommand:
    """A parsed ``/rca``: which services, which time range, what to ask, who sees the answer."""

    services: tuple[str, ...]
    last: timedelta | None = None
    since: time | None = None
    until: time | None = None
    question: str | None = None
    private: bool = False

    def window(self, now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
        """(incident start, end) as aware datetimes; the end is never after ``now``."""
        if self.since is None:
            return now - (self.last or DEFAULT_LAST), now
        start = _latest(self.since, now, tz)
        if self.until is None:
            return start, now
        end = datetime.combine(start.date(), self.until, tzinfo=tz)
        if end <= start:
            end += timedelta(days=1)
        return start, min(end, now)


def _latest(clock: time, now: datetime, tz: tzinfo) -> datetime:
    local_now = now.astimezone(tz)
    moment = datetime.combine(local_now.date(), clock, tzinfo=tz)
    return moment - timedelta(days=1) if moment > local_now else moment


def usage(
    known_services: Sequence[str], problem: str | None = None, suggestions: Sequence[str] = ()
) -> str:
    """The help reply: what went wrong, the syntax, examples, and the services we know."""
    lines = [f":warning: {problem}"] if problem else []
    if suggestions:
        lines.append("Did you mean " + " or ".join(f"`{s}`" for s in suggestions) + "?")
    lines += [
        "*Usage:* `/rca <service> [last 30m | since 14:05 | 14:05-14:40] [question] [--private]`",
        "Examples: `/rca checkout`, `/rca checkout last 2h`, "
        "`/rca payments since 14:05 why are charges failing?`, `/rca api 14:05-14:40 --private`",
    ]
    if known_services:
        shown = sorted(known_services)[:MAX_SERVICES_LISTED]
        more = len(known_services) - len(shown)
        listed = ", ".join(f"`{s}`" for s in shown) + (f" and {more} more" if more > 0 else "")
        lines.append(f"Known services: {listed}")
    return "\n".join(lines)


def _check_services(names: list[str], known: Sequence[str]) -> tuple[str, ...]:
    if not known:
        return tuple(names)
    lookup = {k.lower(): k for k in known}
    out: list[str] = []
    for name in names:
        if name.lower() in lookup:
            out.append(lookup[name.lower()])
            continue
        close = difflib.get_close_matches(name.lower(), list(lookup), n=3, cutoff=0.6)
        raise CommandError(f"Unknown service `{name}`.", known, [lookup[c] for c in close])
    return tuple(dict.fromkeys(out))


def _duration(text: str, known: Sequence[str]) -> timedelta:
    match = _DURATION.match(text)
    if match is None:
        raise CommandError(f"`last` needs a duration like 30m, 2h or 1d, not `{text}`.", known)
    span = timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2).lower()])
    if not timedelta(0) < span <= MAX_RANGE:
        raise CommandError("`last` must be more than 0 and at most 7d.", known)
    return span


def _clock(hours: str, minutes: str) -> time:
    return time(int(hours), int(minutes))


def parse_command(text: str, known_services: Sequence[str]) -> RcaCommand:
    """Parse the text after ``/rca``; raises :class:`CommandError` with the reply to show."""
    words = text.split()
    private = any(w.lower() in PRIVATE_FLAGS for w in words)
    words = [w for w in words if w.lower() not in PRIVATE_FLAGS]
    if not words or words[0].lower() in ("help", "-h", "--help"):
        raise CommandError("Tell me which service to analyse.", known_services)
    services = _check_services([s for s in words[0].split(",") if s], known_services)
    rest = words[1:]
    last = since = until = None
    if rest and rest[0].lower() == "last":
        if len(rest) < 2:
            raise CommandError("`last` needs a duration like 30m or 2h.", known_services)
        # "last 30 m" and "last 30m" both read as 30 minutes
        if len(rest) > 2 and rest[1].isdigit() and rest[2].lower() in _UNIT_S:
            rest = [rest[0], rest[1] + rest[2], *rest[3:]]
        last, rest = _duration(rest[1], known_services), rest[2:]
    elif rest and rest[0].lower() == "since":
        match = _CLOCK_ONLY.match(rest[1]) if len(rest) > 1 else None
        if match is None:
            raise CommandError("`since` needs a clock time like 14:05.", known_services)
        since, rest = _clock(*match.groups()), rest[2:]
    elif rest and (match := _CLOCK_RANGE.match(rest[0])):
        h1, m1, h2, m2 = match.groups()
        since, until, rest = _clock(h1, m1), _clock(h2, m2), rest[1:]
    elif rest and re.match(r"^\d{1,2}:\d", rest[0]):
        raise CommandError(f"`{rest[0]}` is not a time range like 14:05-14:40.", known_services)
    question = " ".join(rest).strip() or None
    return RcaCommand(services, last, since, until, question, private)
