"""How a raw log line becomes a template: one line of text, masked parameters, a Drain3 cluster.

Lines are reduced to one line of text (JSON and logfmt bodies unwrapped, stack traces cut to
their headline and exception), parameters are masked with a single regex pass, identical
masked lines are counted once, and only distinct lines go through Drain. That keeps 100,000
lines well inside the engine's one-second budget while the templates stay Drain's.

A line whose layout writes where it was logged (logback's and log4j's ``%logger#%line``,
``server.go:42`` from Go's and Python's loggers) keeps that call site: two statements of one
class that differ only by their line number are two templates, so a statement the code no
longer reaches (it now throws before it) is not hidden in its neighbour's count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

# Any word that holds a digit is a parameter: ids, numbers, durations, IPs, hashes, UUIDs.
# One character-class scan is several times faster than an alternation of typed patterns.
# Deleted from a line's UTF-8 bytes to key it: no byte of a multi-byte character is an ASCII
# digit, so this is the text with its digits deleted, about ten times faster than
# ``str.translate`` (lone surrogates pass through as bytes of their own).
_DIGIT_BYTES = b"0123456789"
_MASK = re.compile(r"\b[\w.\-]*\d[\w.\-]*")
_EMBEDDED_LEVEL = re.compile(
    r"(?:\blevel\"?\s*[=:]\s*\"?|^\s*\[?|^\S+\s+\[?|^\S+\s+\S+\s+\[?|\s-\s)"
    r"(error|err|warn|warning|fatal|critical|crit|panic|severe|info|debug)\b",
    re.IGNORECASE,
)
_LOGFMT_MSG = re.compile(r"\bmsg=(?:\"((?:[^\"\\]|\\.)*)\"|(\S+))")
_EXCEPTION_LINE = re.compile(r"(?:Caused by: )?[\w.$]+(?:Exception|Error)\b")
# klog/glog (Kubernetes, many Go services): "E0129 08:42:22.383123 1 server.go:42] ...";
# the masked line loses the letter with the date, so it is read from the raw line.
_KLOG = re.compile(r"^\s*([IWEF])\d{4} ")
# A call site in a line's first line: ``c.s.PriceController#46`` or ``server.go:42``: a mark
# right after a name and before the line number (found with a literal-led scan).
_SITE_MARK = re.compile(r"(?:#|\.(?:java|kt|scala|go|py|rb|js|ts|cs|rs|php):)(?=\d)")
_DIGITS = re.compile(r"\d+")
HEADLINE_WORDS = 24  # a headline's words, as Drain splits them (whitespace)
HEADLINE_CHARS = 600  # and its characters, for lines of few, very long words (JSON blobs)
_HEADLINE = re.compile(rf"\s*\S+(?:\s+\S+){{0,{HEADLINE_WORDS - 1}}}")
SITE_SPAN = 200  # characters of a line's first line searched for its call site
_NAME_STOPS = (" ", "\t", "[", "(", "/", '"', "=", "<")
_KLOG_LEVELS = {"I": "INFO", "W": "WARN", "E": "ERROR", "F": "CRITICAL"}
_LEVEL_NAMES = {"err": "ERROR", "warning": "WARN", "fatal": "CRITICAL", "crit": "CRITICAL"}


def headline(message: str) -> str:
    """The one line that names what happened: unwraps JSON/logfmt, cuts stack traces."""
    text = message.strip()
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            text = str(body.get("msg") or body.get("message") or body.get("error") or text)
    if "\n" in text:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        head = lines[0] if lines else ""
        if head.startswith("Traceback") and len(lines) > 1:
            head = lines[-1]
        elif exc := next((ln for ln in lines[1:4] if _EXCEPTION_LINE.match(ln)), None):
            head = f"{head} | {exc}"
        text = head
    if "msg=" in text and (m := _LOGFMT_MSG.search(text)):
        text = m.group(1) or m.group(2) or text
    return _clipped(text)


def _clipped(text: str) -> str:
    """The first :data:`HEADLINE_WORDS` words of ``text`` (at most :data:`HEADLINE_CHARS`
    characters). Counted in words, not characters, so that where a line is cut does not
    depend on how long the names in it are: with a character cut, a service named one
    letter longer pushed the last word out, and Drain split the line's statement in two."""
    words = _HEADLINE.match(text)
    return (words.group() if words else text)[:HEADLINE_CHARS]


def _embedded_level(text: str) -> str | None:
    """A level written in the message itself (logfmt, JSON, ``[ERROR]`` prefixes)."""
    m = _EMBEDDED_LEVEL.search(text[:120])
    if m is None:
        return None
    word = m.group(1).lower()
    return _LEVEL_NAMES.get(word, word.upper())


def mask(text: str) -> str:
    return _MASK.sub("<*>", text)


def _first_site(message: str) -> str | None:
    """Where the line's first line writes a call site (``p.c.PriceController#46``,
    ``server.go:42``), as its anchor: the name's last letter and the mark before the number
    (``r#``, ``r.go:``). Lines with the same masked text differ only in their parameters, so
    the anchor's first occurrence sits at the same place in each of them (:func:`_site_at`)."""
    first = message.find("\n")
    end = SITE_SPAN if first < 0 else min(first, SITE_SPAN)
    mark = _SITE_MARK.search(message, 1, end)
    while mark is not None:
        at = mark.start() - 1
        if message[at].isalpha() or message[at] in "_$":
            return message[at : mark.end()]
        mark = _SITE_MARK.search(message, mark.end(), end)
    return None


def _site_at(message: str, anchor: str) -> str:
    """The call site after ``anchor`` (``r#46``): two C-speed scans, no regex search."""
    at = message.find(anchor)
    number = _DIGITS.match(message, at + len(anchor)) if at >= 0 else None
    return anchor + number.group() if number else ""


def _named(message: str, at: int, site: str) -> str:
    """``site``, found at ``at``, with the whole name it ends, for the reader: the name runs
    back to the last space, quote, bracket or slash before it."""
    start = max(message.rfind(stop, 0, at) for stop in _NAME_STOPS) + 1
    return message[start:at] + site


def _new_miner() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.drain_sim_th = 0.4
    config.drain_depth = 4
    config.parametrize_numeric_tokens = True
    return TemplateMiner(config=config)


class _Templates:
    """Masked line and call site -> template id, mining each distinct masked line once.

    A template is a Drain cluster at one call site: Drain would merge statements that differ
    only by the line number their layout writes."""

    def __init__(self) -> None:
        self.miner = _new_miner()
        self.cluster_of: dict[str, int] = {}
        self.ids: dict[tuple[int, str], int] = {}
        self.origin: list[tuple[int, str]] = []

    def cluster(self, masked: str, site: str) -> int:
        cid = self.cluster_of.get(masked)
        if cid is None:
            cid = int(self.miner.add_log_message(masked)["cluster_id"])
            self.cluster_of[masked] = cid
        tid = self.ids.get((cid, site))
        if tid is None:
            tid = self.ids[(cid, site)] = len(self.origin)
            self.origin.append((cid, site))
        return tid

    def message_of(self, tid: int) -> int:
        """The Drain cluster of a template: its message, whatever statement logged it."""
        return self.origin[tid][0]

    def template(self, tid: int) -> str:
        """The Drain template, with its call site written back where the mask hid it."""
        cid, site = self.origin[tid]
        text = str(self.miner.drain.id_to_cluster[cid].get_template())
        if not site:
            return text
        hidden = mask(site)
        return text.replace(hidden, site, 1) if hidden in text else f"{text} ({site})"


@dataclass(frozen=True)
class Shape:
    """What every line with the same masked text shares: its template and its level.
    ``cluster`` is the template's id: a Drain cluster at one call site."""

    cluster: int
    embedded_level: str | None


class _Sited:
    """The lines of one masked text that write a call site: one shape per call site."""

    def __init__(self, anchor: str, line: str, level: str | None, templates: _Templates) -> None:
        self.anchor, self.line, self.level, self.templates = anchor, line, level, templates
        self.by_site: dict[str, Shape] = {}

    def shape(self, head: str) -> Shape:
        site = _site_at(head, self.anchor)
        shape = self.by_site.get(site)
        if shape is None:
            name = _named(head, head.find(site), site) if site else ""
            shape = Shape(self.templates.cluster(self.line, name), self.level)
            self.by_site[site] = shape
        return shape


class Shapes:
    """Raw line -> shape; parsing (JSON, logfmt, stack traces) runs once per shape.

    Lines are first keyed with their digits deleted (a C-speed ``bytes.translate``), which
    already merges most lines of one template; only unseen keys pay for the regex mask. Where
    a masked text's lines write a call site, learnt once per masked text, its number (two
    C-speed scans per line) splits them.
    """

    def __init__(self) -> None:
        self.templates = _Templates()
        self.by_masked: dict[str, Shape | _Sited] = {}
        self.by_key: dict[bytes, Shape | _Sited] = {}

    def of(self, message: str) -> Shape:
        head = message[:400]
        key = head.encode("utf-8", "surrogatepass").translate(None, _DIGIT_BYTES)
        known = self.by_key.get(key)
        if known is None:
            known = self.by_key[key] = self._masked(head)
        return known if isinstance(known, Shape) else known.shape(head)

    def _masked(self, head: str) -> Shape | _Sited:
        masked = mask(head)
        if klog := _KLOG.match(head):
            masked = f"{_KLOG_LEVELS[klog.group(1)]} {masked}"
        known = self.by_masked.get(masked)
        if known is None:
            line, level = headline(masked), _embedded_level(masked)
            site = _first_site(head)
            if site is None:
                known = Shape(self.templates.cluster(line, ""), level)
            else:
                known = _Sited(site, line, level, self.templates)
            self.by_masked[masked] = known
        return known
