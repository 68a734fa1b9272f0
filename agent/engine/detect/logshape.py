"""How a raw log line becomes a template: one line of text, masked parameters, a Drain3 cluster.

Lines are reduced to one line of text (JSON and logfmt bodies unwrapped, stack traces cut to
their headline and exception), parameters are masked with a single regex pass, identical
masked lines are counted once, and only distinct lines go through Drain. That keeps 100,000
lines well inside the engine's one-second budget while the templates stay Drain's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

# Any word that holds a digit is a parameter: ids, numbers, durations, IPs, hashes, UUIDs.
# One character-class scan is several times faster than an alternation of typed patterns.
_NO_DIGITS = str.maketrans("", "", "0123456789")
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
    return text[:300]


def _embedded_level(text: str) -> str | None:
    """A level written in the message itself (logfmt, JSON, ``[ERROR]`` prefixes)."""
    m = _EMBEDDED_LEVEL.search(text[:120])
    if m is None:
        return None
    word = m.group(1).lower()
    return _LEVEL_NAMES.get(word, word.upper())


def mask(text: str) -> str:
    return _MASK.sub("<*>", text)


def _new_miner() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.drain_sim_th = 0.4
    config.drain_depth = 4
    config.parametrize_numeric_tokens = True
    return TemplateMiner(config=config)


class _Templates:
    """Masked line -> Drain cluster id, mining each distinct masked line once."""

    def __init__(self) -> None:
        self.miner = _new_miner()
        self.cluster_of: dict[str, int] = {}

    def cluster(self, masked: str) -> int:
        cid = self.cluster_of.get(masked)
        if cid is None:
            cid = int(self.miner.add_log_message(masked)["cluster_id"])
            self.cluster_of[masked] = cid
        return cid

    def template(self, cid: int) -> str:
        return str(self.miner.drain.id_to_cluster[cid].get_template())


@dataclass(frozen=True)
class Shape:
    """What every line with the same masked text shares: its template and its level."""

    cluster: int
    embedded_level: str | None


class Shapes:
    """Raw line -> shape; parsing (JSON, logfmt, stack traces) runs once per shape.

    Lines are first keyed with their digits deleted (a C-speed ``str.translate``), which
    already merges most lines of one template; only unseen keys pay for the regex mask.
    """

    def __init__(self) -> None:
        self.templates = _Templates()
        self.by_masked: dict[str, Shape] = {}
        self.by_key: dict[str, Shape] = {}

    def of(self, message: str) -> Shape:
        head = message[:400]
        key = head.translate(_NO_DIGITS)
        shape = self.by_key.get(key)
        if shape is None:
            masked = mask(head)
            if klog := _KLOG.match(head):
                masked = f"{_KLOG_LEVELS[klog.group(1)]} {masked}"
            shape = self.by_masked.get(masked)
            if shape is None:
                level = _embedded_level(masked)
                cid = self.templates.cluster(headline(masked))
                shape = Shape(cid, level)
                self.by_masked[masked] = shape
            self.by_key[key] = shape
        return shape
