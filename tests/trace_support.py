"""Log lines that carry a trace id, for the tests of what traces on log lines tell."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.models import LogRecord


def traced_line(t: float, service: str, message: str, trace: str | None) -> LogRecord:
    return LogRecord(
        timestamp=datetime.fromtimestamp(t, tz=UTC),
        service=service,
        message=message,
        trace_id=trace,
    )
