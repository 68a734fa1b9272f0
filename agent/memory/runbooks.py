"""The team's runbooks: a folder of Markdown files, matched to an analysis and cited as R1.

Each runbook starts with YAML front matter that says what it is for::

    ---
    title: Checkout database pool
    alerts: [CheckoutErrors, HighLatency]
    services: [checkout]
    fault_types: [db_pool_exhaustion]
    url: https://wiki.example.com/runbooks/checkout-pool   # optional
    ---
    # Checkout database pool
    ## Connection pool exhaustion
    1. Check active connections ...

A runbook matches by the alert's name, the root-cause service and its fault type (all
optional, each adds to the match), or by the alert's ``runbook_url`` annotation naming its
``url`` or its file. The cited *section* is the heading whose words best match the fault type
and service (else the first section). Its text is redacted and clipped: it goes into the
LLM prompt as data inside the incident block, never as instructions.

Loading never stops the service: a file whose front matter is not valid YAML, or whose
fields have the wrong type, is reported with its file and line (``problems``) and skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agent.models import Analysis, FaultType, RunbookCitation

MAX_FILE_BYTES = 256 * 1024
MAX_FILES = 500
MAX_SECTION_CHARS = 1500
MAX_CITED = 2
_FRONT = "---"
_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
_LIST_FIELDS = ("alerts", "services", "fault_types")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Section:
    heading: str
    text: str


@dataclass(frozen=True)
class Runbook:
    path: str
    title: str
    alerts: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    fault_types: frozenset[str] = frozenset()
    url: str | None = None
    sections: tuple[Section, ...] = ()


@dataclass
class RunbookLibrary:
    runbooks: list[Runbook] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _front_matter(text: str, name: str) -> tuple[dict[str, object], str, int]:
    """(front matter, body, line the body starts on); raises ValueError naming the line."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != _FRONT:
        raise ValueError(f"{name}:1: no front matter (the file must start with a '---' line)")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == _FRONT), None)
    if end is None:
        raise ValueError(f"{name}:1: front matter is not closed by a '---' line")
    try:
        data = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ValueError(f"{name}:{line}: front matter is not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{name}:2: front matter must be a mapping (key: value lines)")
    return data, "\n".join(lines[end + 1 :]), end + 2


def _key_line(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(f"{key}:"):
            return number
    return 1


def _names(data: Mapping[str, object], key: str, text: str, name: str) -> frozenset[str]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        line = _key_line(text, key)
        raise ValueError(f"{name}:{line}: {key} must be a list of names")
    return frozenset(str(v) for v in value)


def _sections(body: str) -> tuple[Section, ...]:
    sections: list[Section] = []
    heading, lines = "", list[str]()
    for line in body.splitlines():
        match = _HEADING.match(line)
        if match:
            if heading or "".join(lines).strip():
                sections.append(Section(heading, "\n".join(lines).strip()))
            heading, lines = match.group(2), []
        else:
            lines.append(line)
    if heading or "".join(lines).strip():
        sections.append(Section(heading, "\n".join(lines).strip()))
    return tuple(sections)


def parse_runbook(text: str, name: str) -> Runbook:
    """One runbook file; raises ValueError with ``file:line: problem``."""
    data, body, _ = _front_matter(text, name)
    faults = _names(data, "fault_types", text, name)
    unknown = sorted(faults - {f.value for f in FaultType})
    if unknown:
        line = _key_line(text, "fault_types")
        known = ", ".join(f.value for f in FaultType)
        raise ValueError(f"{name}:{line}: unknown fault type {unknown[0]!r} (one of: {known})")
    title = data.get("title")
    url = data.get("url")
    sections = _sections(body)
    if title is None:
        title = next((s.heading for s in sections if s.heading), Path(name).stem)
    return Runbook(
        path=name,
        title=str(title)[:200],
        alerts=_names(data, "alerts", text, name),
        services=_names(data, "services", text, name),
        fault_types=faults,
        url=str(url) if isinstance(url, str) else None,
        sections=sections,
    )


def load_runbooks(folder: Path) -> RunbookLibrary:
    """Every ``*.md`` under ``folder`` (sorted); bad files become ``problems``, not errors."""
    library = RunbookLibrary()
    if not folder.is_dir():
        library.problems.append(f"{folder}: runbooks folder does not exist")
        return library
    for path in sorted(folder.rglob("*.md"))[:MAX_FILES]:
        name = path.relative_to(folder).as_posix()
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"{name}:1: larger than the limit of {MAX_FILE_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
            library.runbooks.append(parse_runbook(text, name))
        except UnicodeDecodeError:
            library.problems.append(f"{name}:1: not UTF-8 text")
        except (OSError, ValueError) as exc:
            library.problems.append(str(exc))
    return library


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _section(runbook: Runbook, service: str | None, fault: str | None) -> Section | None:
    """The section whose heading and text best match the fault type and the service."""
    wanted = _words((fault or "").replace("_", " ")) | _words(service or "")
    if not runbook.sections:
        return None

    def overlap(section: Section) -> int:
        return 2 * len(_words(section.heading) & wanted) + len(_words(section.text) & wanted)

    best = max(runbook.sections, key=overlap)
    return best if overlap(best) > 0 else runbook.sections[0]


def _why(runbook: Runbook, alert: str | None, service: str | None, fault: str | None) -> str:
    parts = []
    if alert and alert in runbook.alerts:
        parts.append(f"alert {alert}")
    if service and service in runbook.services:
        parts.append(f"service {service}")
    if fault and fault in runbook.fault_types:
        parts.append(f"fault type {fault}")
    return ", ".join(parts)


def _linked(runbook: Runbook, runbook_url: str | None) -> bool:
    if not runbook_url:
        return False
    return runbook.url == runbook_url or runbook_url.rstrip("/").endswith(runbook.path)


def cite_runbooks(
    library: RunbookLibrary | None,
    draft: Analysis,
    runbook_url: str | None = None,
    redact: Callable[[str], str] | None = None,
) -> list[RunbookCitation]:
    """The runbook sections that match ``draft``, best first, as ``R1``, ``R2``."""
    top = draft.candidates[0] if draft.candidates and not draft.insufficient_evidence else None
    service = top.service if top else None
    fault = top.fault_type.value if top else None
    alert = draft.trigger.alert_name
    scored: list[tuple[int, Runbook]] = []
    for runbook in library.runbooks if library else []:
        score = 8 * _linked(runbook, runbook_url)
        score += 3 * bool(alert and alert in runbook.alerts)
        score += 2 * bool(service and service in runbook.services)
        score += 2 * bool(fault and fault in runbook.fault_types)
        if (
            runbook.services
            and service not in runbook.services
            and not _linked(runbook, runbook_url)
        ):
            continue  # written for other services
        if score > 0:
            scored.append((score, runbook))
    scored.sort(key=lambda pair: (-pair[0], pair[1].path))
    clean = redact or (lambda text: text)
    cited = []
    for number, (_score, runbook) in enumerate(scored[:MAX_CITED], start=1):
        section = _section(runbook, service, fault)
        why = _why(runbook, alert, service, fault) or "the alert's runbook_url"
        cited.append(
            RunbookCitation(
                id=f"R{number}",
                title=clean(runbook.title),
                section=clean(section.heading) if section else "",
                path=runbook.path,
                url=runbook.url or (runbook_url if _linked(runbook, runbook_url) else None),
                why=why,
                text=clean(section.text)[:MAX_SECTION_CHARS] if section else "",
            )
        )
    if runbook_url and not any(_linked(r, runbook_url) for _s, r in scored[:MAX_CITED]):
        cited.append(
            RunbookCitation(
                id=f"R{len(cited) + 1}",
                title="the alert's runbook",
                url=runbook_url,
                why="the alert's runbook_url annotation",
            )
        )
    return cited


def runbook_url_of(annotations: Sequence[Mapping[str, str]]) -> str | None:
    """The first ``runbook_url`` annotation of an alert group (http(s) only)."""
    for notes in annotations:
        url = notes.get("runbook_url", "")
        if url.startswith(("http://", "https://")):
            return url[:2000]
    return None
