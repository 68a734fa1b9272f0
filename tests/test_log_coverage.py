"""Logs that cover only part of the window, templates that stop, and levels written inside the
text in the common layouts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.engine.detect.logs import mine_logs
from agent.engine.detect.logshape import Shapes
from agent.models import LogRecord

T0 = 1_767_225_600.0  # window start; split at +600 s, end at +900 s


def _line(t: float, service: str, message: str) -> LogRecord:
    return LogRecord(timestamp=datetime.fromtimestamp(t, tz=UTC), service=service, message=message)


def _steady(service: str, message: str, first: float, last: float, every: float) -> list[LogRecord]:
    n = int((last - first) / every)
    return [_line(first + i * every, service, message) for i in range(n + 1)]


def test_a_service_logging_faster_over_a_short_span_did_not_go_silent() -> None:
    # Lines exist only from 60 s before the split: 1/s before it, 2/s after.
    records = _steady("api", "GET /cart 200", T0 + 540, T0 + 599, 1.0)
    records += _steady("api", "GET /cart 200", T0 + 600, T0 + 900, 0.5)
    findings = mine_logs(records, T0, T0 + 600, T0 + 900)
    assert not any(f.pattern == "vanished" for f in findings)


def test_a_service_that_really_stopped_logging_is_still_found() -> None:
    records = _steady("api", "GET /cart 200", T0, T0 + 600, 2.0)
    records += _steady("db", "query ok", T0, T0 + 900, 2.0)  # the source itself kept going
    findings = mine_logs(records, T0, T0 + 600, T0 + 900)
    assert any(f.pattern == "vanished" and f.service == "api" for f in findings)


def test_a_template_that_stops_while_the_service_keeps_logging_is_a_finding() -> None:
    records = _steady("route", "query route by id", T0, T0 + 900, 3.0)
    records += _steady("route", "query routes in batch", T0, T0 + 599, 6.0)
    findings = mine_logs(records, T0, T0 + 600, T0 + 900)
    stopped = [f for f in findings if f.pattern == "stopped"]
    assert [f.service for f in stopped] == ["route"]
    assert stopped[0].incident_count == 0 and stopped[0].baseline_rate == pytest.approx(10, 0.1)


def test_a_template_that_only_slowed_a_little_is_not_stopped() -> None:
    records = _steady("route", "query routes in batch", T0, T0 + 599, 6.0)
    records += _steady("route", "query routes in batch", T0 + 600, T0 + 900, 9.0)
    assert not any(f.pattern == "stopped" for f in mine_logs(records, T0, T0 + 600, T0 + 900))


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("16:42:22.382 ERROR c.s.ContactsServiceImpl#12 TraceID: abc", "ERROR"),
        ("2023-01-29 08:42:22,383 - app.db - ERROR - connection lost", "ERROR"),
        ("2023-01-29 08:42:22,383 - app.db - WARNING - slow query", "WARN"),
        ("E0129 08:42:22.383123   12345 server.go:42] failed to sync", "ERROR"),
        ("W0129 08:42:22.383123   12345 server.go:42] retrying", "WARN"),
        ("2023/01/29 08:42:22 [error] 123#0: *5 connect() failed", "ERROR"),
        ('{"level":"error","msg":"boom"}', "ERROR"),
        ('time="2023-01-29T08:42:22Z" level=warning msg="slow"', "WARN"),
        ("2023-01-29T08:42:22.383Z\tERROR\tsvc/handler.go:12\tboom", "ERROR"),
        ("GET /cart 200 12ms", None),
    ],
)
def test_levels_are_read_from_the_common_text_layouts(line: str, level: str | None) -> None:
    assert Shapes().of(line).embedded_level == level


def test_klog_lines_of_different_levels_are_different_templates() -> None:
    shapes = Shapes()
    info = shapes.of("I0129 08:42:22.383123 1 sync.go:42] synced pods")
    error = shapes.of("E0129 08:42:22.383123 1 sync.go:42] synced pods")
    assert (info.embedded_level, error.embedded_level) == ("INFO", "ERROR")
