"""Search hits as :class:`~agent.models.LogRecord`: values found in ``_source`` however the
shipper wrote them (nested, dotted, or mixed), at about a microsecond per field."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.models import LogRecord
from connectors.esquery import source_path
from connectors.logcounts import to_datetime
from connectors.settings import LogFields

Link = Callable[[str, str | None], str | None]
Path = tuple[str, tuple[str, ...]]  # dotted, and split


def _path(field: str) -> Path:
    dotted = source_path(field)
    return dotted, tuple(dotted.split("."))


@dataclass(frozen=True)
class HitPaths:
    """Where each record field sits in ``_source``, split once per fetch, not per hit."""

    service: Path
    level: Path
    message: Path
    pod: Path
    trace_id: Path

    @classmethod
    def of(cls, fields: LogFields) -> HitPaths:
        return cls(
            _path(fields.service),
            _path(fields.level),
            _path(fields.message),
            _path(fields.pod),
            _path(fields.trace_id),
        )


def lookup(doc: Any, path: Path) -> Any:
    """The value at ``path``: the nested walk first (ECS shippers), then any mix of dots."""
    node = doc
    for part in path[1]:
        if not isinstance(node, dict) or part not in node:
            return _mixed(doc, path[0])
        node = node[part]
    return node


def _mixed(doc: Any, dotted: str) -> Any:
    if not isinstance(doc, dict):
        return None
    if dotted in doc:
        return doc[dotted]
    parts = dotted.split(".")
    for cut in range(1, len(parts)):
        head = ".".join(parts[:cut])
        if head in doc:
            found = _mixed(doc[head], ".".join(parts[cut:]))
            if found is not None:
                return found
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return " ".join(str(v) for v in value) if value else None
    return str(value)


def record_of(hit: dict[str, Any], paths: HitPaths, fallback_service: str, link: Link) -> LogRecord:
    """One hit as a record; names that repeat across lines are interned to save memory.

    The time is the hit's first sort value (epoch milliseconds), so any date format in
    ``_source`` reads the same.
    """
    source = hit.get("_source") or {}
    service = _text(lookup(source, paths.service)) or fallback_service
    level = _text(lookup(source, paths.level))
    pod = _text(lookup(source, paths.pod))
    url = link(service, level)
    return LogRecord(
        timestamp=to_datetime(float(hit["sort"][0])),
        service=sys.intern(service),
        level=level or "INFO",
        message=_text(lookup(source, paths.message)) or "",
        pod=sys.intern(pod) if pod else None,
        trace_id=_text(lookup(source, paths.trace_id)),
        fields={"link": url} if url else {},
    )
