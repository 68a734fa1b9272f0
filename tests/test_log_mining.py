"""Drain3-based log mining: new, bursting, vanished templates and error-rate shifts."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from agent.engine.detect.logfinding import signatures_of
from agent.engine.detect.logs import mine_logs
from agent.engine.detect.logshape import Shapes, headline, mask
from agent.models import LogRecord

START = 1_767_225_600.0
SPLIT = START + 3600
END = START + 4800


def _log(t: float, service: str, message: str, level: str = "INFO") -> LogRecord:
    return LogRecord(
        timestamp=datetime.fromtimestamp(t, UTC), service=service, level=level, message=message
    )


def _background(rng: random.Random, service: str = "cart", every: float = 5.0) -> list[LogRecord]:
    out = []
    t = START
    while t < END:
        out.append(
            _log(t, service, f"GET /api/cart/{rng.randint(1, 9999)} 200 {rng.randint(1, 90)}ms")
        )
        t += every
    return out


def test_masking_replaces_parameters_but_keeps_words() -> None:
    masked = mask("GET /api/cart/123 200 12ms user=u9 from 10.0.0.1:8080 id=3f2a9b1c-1111-2222")
    assert masked == "GET /api/cart/<*> <*> <*> user=<*> from <*>:<*> id=<*>"
    assert mask("connection refused by redis-cart") == "connection refused by redis-cart"


def test_headline_unwraps_json_logfmt_and_stack_traces() -> None:
    assert headline('{"level":"error","msg":"payment failed"}') == "payment failed"
    assert headline('level=error msg="payment failed" code=5') == "payment failed"
    java = "Failed to charge card\njava.lang.IllegalStateException: declined\n\tat a.b(C.java:1)"
    assert headline(java) == "Failed to charge card | java.lang.IllegalStateException: declined"
    py = 'Traceback (most recent call last):\n  File "x.py", line 1\nKeyError: user'
    assert headline(py) == "KeyError: user"


def _lookup_failed(name: str, trace: str) -> str:
    stations = "[" + ",".join(["shanghai", "suzhou", "nanjing", "wuxi"] * 6) + "]"
    return (
        f"19:28:55.409 ERROR c.s.RouteServiceImpl#175 TraceID: {trace} route {stations} "
        f"failed: No instances available for {name} with root cause [connection refused]"
        " while calling the route service for the order of the day"
    )


def test_a_long_line_is_cut_in_words_so_a_longer_name_does_not_split_its_statement() -> None:
    # Cut at 300 characters, the line naming the shorter service kept "with roo" and the
    # other ended on its name: Drain saw lines of different lengths, two templates for one
    # statement, and a system whose names are longer read its logs differently.
    short, long = _lookup_failed("ts-basic-service", "0a1b"), _lookup_failed("ts-consign-x", "2c3d")
    assert len(short) > 300
    assert len(headline(short).split()) == len(headline(long).split()) == 24
    shapes = Shapes()
    assert shapes.of(short).cluster == shapes.of(long).cluster
    blob = '{"msg": "' + "y" * 5000 + '"}'
    assert len(headline(blob)) == 600  # one very long word is still cut


@pytest.mark.parametrize(
    ("first", "second", "apart"),
    [
        # logback/log4j %logger#%line: two statements of one controller
        (
            "18:20:13.976 INFO p.c.PriceController#39 TraceID: a1 [query][route: 7]",
            "18:20:13.977 INFO p.c.PriceController#46 TraceID: b2 [query][route: 8]",
            True,
        ),
        # klog and Go/Python loggers' file:line
        (
            "E0129 08:42:22.383123 1 server.go:42] sync 3 failed",
            "E0129 08:42:23.383123 1 server.go:57] sync 4 failed",
            True,
        ),
        ("INFO [handlers.py:118] order 42 placed", "INFO [handlers.py:120] order 43 placed", True),
        # a number after '#' that follows no name, and a stack frame below the first line
        ("Processing order #1234 for u7", "Processing order #1299 for u8", False),
        (
            "charge failed\n\tat a.b.Pay.charge(Pay.java:77)",
            "charge failed\n\tat a.b.Pay.charge(Pay.java:91)",
            False,
        ),
    ],
)
def test_statements_that_differ_only_by_their_line_number_are_two_templates(
    first: str, second: str, apart: bool
) -> None:
    shapes = Shapes()
    a, b = shapes.of(first), shapes.of(second)
    assert (a.cluster != b.cluster) is apart
    assert shapes.of(second.replace("8", "9")).cluster == b.cluster  # its own next line


def test_lines_of_any_script_key_by_their_text_without_digits() -> None:
    # Keyed on their UTF-8 bytes with ASCII digits deleted; digits of other scripts differ in
    # the key but are masked like any digit; a lone surrogate (undecodable input passed
    # through) is keyed too.
    shapes = Shapes()
    first = shapes.of("Zahlung für Bestellung 4711 abgelehnt: Kontostand ٣٤ €")
    assert shapes.of("Zahlung für Bestellung 815 abgelehnt: Kontostand ٣٤ €") == first
    assert shapes.of("Zahlung für Bestellung 815 abgelehnt: Kontostand ٥٦ €") == first
    assert shapes.of("Zahlung für Lieferung 815 abgelehnt") != first
    odd = shapes.of("bad byte \udcff in request 12")
    assert shapes.of("bad byte \udcff in request 345") == odd != first


def test_a_template_shows_its_call_site() -> None:
    shapes = Shapes()
    shapes.of("18:20:13.976 INFO p.c.PriceController#39 TraceID: a1 [query][route: 7]")
    shape = shapes.of("18:20:13.977 INFO p.c.PriceController#46 TraceID: b2 [query][route: 8]")
    template = shapes.templates.template(shape.cluster)
    assert "p.c.PriceController#46 TraceID: <*>" in template and "route: <*>" in template


def test_a_statement_no_longer_reached_is_found_though_its_neighbour_still_logs() -> None:
    # A controller logs on entry (#39) and after the lookup (#46); from the split the lookup
    # throws, so #46 stops while #39 goes on. Masked together they would barely move.
    logs = []
    for i in range(int((END - START) / 10)):
        t = START + 10 * i
        logs.append(_log(t, "price", f"{i} INFO p.c.PriceController#39 [query][route: {i}]"))
        if t < SPLIT:
            logs.append(
                _log(t + 1, "price", f"{i} INFO p.c.PriceController#46 [query][route: {i}]")
            )
    found = mine_logs(logs, START, SPLIT, END)
    stopped = [f for f in found if f.pattern == "stopped"]
    assert [f.service for f in stopped] == ["price"]
    assert "PriceController#46" in stopped[0].template


def test_one_message_logged_at_two_statements_is_one_finding() -> None:
    # The same error, logged by two methods (#51 and #69), is one event told twice: split by
    # call site it must not count as two findings for the service.
    rng = random.Random(6)
    logs = _background(rng, "execute")
    logs += [
        _log(
            SPLIT + 30 + i * 20,
            "execute",
            f"{i} ERROR e.s.ExecuteServiceImpl#{51 if i % 2 else 69} [execute][Order Status Wrong]",
        )
        for i in range(24)
    ]
    new = [f for f in mine_logs(logs, START, SPLIT, END) if f.pattern == "new"]
    assert len(new) == 1 and new[0].service == "execute"
    assert "ExecuteServiceImpl#" in new[0].template


def test_new_error_template_in_the_incident_is_found() -> None:
    rng = random.Random(1)
    logs = _background(rng)
    logs += [
        _log(
            SPLIT + 60 + i * 10,
            "cart",
            f"Failed to read from redis-cart:6379: connection refused ({i})",
            "ERROR",
        )
        for i in range(20)
    ]
    found = mine_logs(logs, START, SPLIT, END, services=frozenset({"cart", "redis-cart"}))
    new = [f for f in found if f.pattern == "new"]
    assert len(new) == 1
    assert new[0].incident_count == 20 and new[0].baseline_count == 0
    assert new[0].onset == SPLIT + 60
    assert "refused" in new[0].signatures
    assert new[0].mentions == frozenset({"redis-cart"})
    assert any(f.pattern == "error_rate" and f.service == "cart" for f in found)


def test_template_that_exists_in_the_baseline_but_bursts_is_found() -> None:
    rng = random.Random(2)
    logs = _background(rng)
    logs += [_log(START + i * 120, "cart", f"slow query took {i}ms", "WARN") for i in range(30)]
    logs += [_log(SPLIT + i * 5, "cart", f"slow query took {i}ms", "WARN") for i in range(200)]
    found = mine_logs(logs, START, SPLIT, END)
    bursts = [f for f in found if f.pattern == "burst"]
    assert bursts and bursts[0].template == "slow query took <*>"
    assert bursts[0].incident_rate > 5 * bursts[0].baseline_rate


def test_service_that_goes_silent_is_found() -> None:
    rng = random.Random(3)
    logs = [r for r in _background(rng, "payment") if r.timestamp.timestamp() < SPLIT + 60]
    logs += _background(rng, "cart")
    found = mine_logs(logs, START, SPLIT, END)
    assert [f.service for f in found if f.pattern == "vanished"] == ["payment"]


def test_steady_logs_give_no_findings() -> None:
    rng = random.Random(4)
    logs = _background(rng) + [
        _log(START + i * 60, "cart", f"cache miss for key k{i}", "WARN") for i in range(80)
    ]
    assert mine_logs(logs, START, SPLIT, END) == []


def test_level_written_in_the_message_is_used() -> None:
    rng = random.Random(5)
    logs = _background(rng)
    logs += [
        _log(SPLIT + i * 20, "cart", f'level=error msg="db write failed id={i}"') for i in range(15)
    ]
    found = [f for f in mine_logs(logs, START, SPLIT, END) if f.pattern == "new"]
    assert found and found[0].level == "ERROR"


def test_empty_logs_give_no_findings() -> None:
    assert mine_logs([], START, SPLIT, END) == []


def test_log_findings_carry_the_source_link_of_their_service() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    link = "https://kibana.example/app/discover#/?q=service.name:cart"
    records = [
        LogRecord(
            timestamp=datetime.fromtimestamp(t0 + 30 * i, tz=UTC),
            service="cart",
            level="ERROR" if i >= 100 else "INFO",
            message="payment declined: upstream returned 503" if i >= 100 else "request ok",
            fields={"link": link},
        )
        for i in range(120)
    ]
    findings = mine_logs(records, t0, t0 + 30 * 100, t0 + 30 * 120)
    assert findings
    assert {f.link for f in findings} == {link}


def test_a_rare_generic_line_seen_twice_is_not_news_when_the_baseline_is_short() -> None:
    # Baseline as long as the incident: two lines both landing in the incident is a coin toss.
    start, split, end = SPLIT - 300, SPLIT, SPLIT + 300
    # Another service logs from start to end, so the window has log coverage on both sides.
    shipped = [_log(t, "web", "GET / 200", "INFO") for t in (start + 10, end - 10)]
    logs = shipped + [
        _log(split + 30 + i, "cart", "request canceled by client: context canceled", "ERROR")
        for i in range(2)
    ]
    assert not [f for f in mine_logs(logs, start, split, end) if f.pattern == "new"]
    # Many lines of it are news, and so are two that say what broke.
    logs_many = shipped + [
        _log(split + 10 + i, "cart", "request canceled by client", "ERROR") for i in range(30)
    ]
    assert [f.pattern for f in mine_logs(logs_many, start, split, end)].count("new") == 1
    disk = shipped + [
        _log(split + 30 + i, "cart", "write /data/x: no space left on device", "ERROR")
        for i in range(2)
    ]
    (found,) = [f for f in mine_logs(disk, start, split, end) if f.pattern == "new"]
    assert "disk" in found.signatures


def test_a_burst_is_dated_when_the_rate_rose_not_at_its_first_line_in_the_incident() -> None:
    steady = [
        _log(t, "cart", "GET /cart 500 upstream error", "ERROR")
        for t in range(int(START), int(SPLIT + 600), 60)
    ]
    burst = [
        _log(SPLIT + 600 + 3 * i, "cart", "GET /cart 500 upstream error", "ERROR")
        for i in range(200)
    ]
    (found,) = [f for f in mine_logs(steady + burst, START, SPLIT, END) if f.pattern == "burst"]
    assert found.onset == pytest.approx(SPLIT + 600, abs=60)


@pytest.mark.parametrize(
    ("line", "deploy"),
    [
        ("deployed version v2.4.1 (previous v2.4.0)", True),
        ("Starting CheckoutApplication v1.8.2 using Java 17.0.9 with PID 1", True),
        ("Pulling image registry.example.com/cart:1.4", True),
        ("[verifyCode][generate captcha image][size: 120x40]", False),
        ("released lock on order 42 after 3 ms", False),
    ],
)
def test_only_a_line_about_a_new_build_reads_as_a_deploy(line: str, deploy: bool) -> None:
    assert ("deploy" in signatures_of(line.lower())) is deploy
