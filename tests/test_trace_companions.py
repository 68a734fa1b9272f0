"""A service that drops out of the requests it used to take part in, read from log lines that
carry a trace id.

A search request fans out: web -> trips -> {seats, prices, routes}, each logging one INFO line
under the request's trace id. When routes' method starts to throw before it logs (and nobody
logs an error about it), its lines drop out of the requests of web, trips, seats and prices,
while those go on logging: no template of routes is new or stopped (the same statement logs
the lookups it serves on their own), and it does not look silent.
"""

from __future__ import annotations

import random

import pytest
from trace_support import traced_line as _line

from agent.engine.detect.companions import Companions
from agent.engine.detect.logs import mine_logs
from agent.engine.evidence import build_evidence
from agent.engine.rank import rank_services
from agent.models import FaultType, LogRecord

T0 = 1_767_225_600.0  # window start; split at +600 s, end at +900 s
SPLIT, END = T0 + 600, T0 + 900
FAN_OUT = ("seats", "prices", "routes")


def _search(t: float, trace: str, silent: frozenset[str]) -> list[LogRecord]:
    """One search through web -> trips -> seats, prices, routes; ``silent`` services throw
    before their line."""
    lines = [
        _line(t, "web", "12:00:00.001 INFO  c.w.Controller#12 GET /search", trace),
        _line(t + 0.002, "trips", "12:00:00.003 INFO  t.TripService#40 query trips", trace),
    ]
    for i, callee in enumerate(FAN_OUT):
        if callee not in silent:
            lines.append(_line(t + 0.004 + i / 1000, callee, _ANSWER[callee], trace))
    return lines


_ANSWER = {
    "seats": "12:00:00.005 INFO  s.SeatService#7 answer",
    "prices": "12:00:00.006 INFO  p.PriceService#7 answer",
    "routes": "12:00:00.007 INFO  r.RouteController#20 get route by id",
}


def _lookup(t: float, rng: random.Random) -> list[LogRecord]:
    """A request routes serves on its own (another endpoint, its own trace), logged by the
    same statement: that template goes on at about half its rate, neither stopped nor new."""
    return [_line(t, "routes", _ANSWER["routes"], f"{rng.getrandbits(64):016x}")]


def _traffic(
    rng: random.Random, silent_from: float | None, silent: frozenset[str] = frozenset({"routes"})
) -> list[LogRecord]:
    records: list[LogRecord] = []
    t = T0 + rng.uniform(0, 2)
    while t < END:
        gone = silent if silent_from is not None and t >= silent_from else frozenset()
        records += _search(t, f"{rng.getrandbits(64):016x}", gone)
        records += _lookup(t + rng.uniform(0, 1), rng)
        t += rng.uniform(2.0, 6.0)
    return records


def _unreached(records: list[LogRecord]) -> list[str]:
    return [f.service for f in mine_logs(records, T0, SPLIT, END) if f.pattern == "unreached"]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_service_that_drops_out_of_its_companions_requests_is_found(seed: int) -> None:
    logs = mine_logs(_traffic(random.Random(seed), SPLIT + 20), T0, SPLIT, END)
    found = [f for f in logs if f.pattern == "unreached"]
    assert [f.service for f in found] == ["routes"]
    (routes,) = found
    assert routes.followers == {"web", "trips", "seats", "prices"}
    assert routes.incident_count < routes.baseline_count / 5  # in a few of the traces due
    # Its own lines went on (the lookups): no other template or silence finding says it.
    assert not [f for f in logs if f.service == "routes" and f.pattern != "unreached"]


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_requests_that_reach_everyone_as_before_give_no_finding(seed: int) -> None:
    assert _unreached(_traffic(random.Random(seed), None)) == []


def test_a_service_fewer_than_three_companions_lost_is_no_finding() -> None:
    # web -> trips -> routes: routes drops out of the requests of web and trips only, which
    # says as much about trips (it stopped calling) as about routes.
    rng = random.Random(8)
    records: list[LogRecord] = []
    t = T0
    while t < END:
        trace = f"{rng.getrandbits(64):016x}"
        records.append(_line(t, "web", "12:00:00.001 INFO  c.w.Controller#12 GET /trip", trace))
        records.append(_line(t + 0.01, "trips", "12:00:00.003 INFO  t.Trip#40 query", trace))
        if t < SPLIT:
            records.append(_line(t + 0.02, "routes", "12:00:00.004 INFO  r.Route#7 answer", trace))
        t += rng.uniform(2.0, 6.0)
    assert _unreached(records) == []


def test_a_trace_one_service_logged_alone_says_nothing() -> None:
    companions = Companions()
    for i in range(20):
        companions.passed(f"a{i}", T0 + i, "routes")
        companions.passed(f"a{i}", T0 + i, "web")
        companions.passed(f"b{i}", SPLIT + i, "web")  # after the split, web logs alone
    assert companions.missing(SPLIT, 4.0) == []


def test_lines_may_arrive_in_any_order() -> None:
    companions = Companions()
    companions.passed("t1", SPLIT + 5, "web")
    companions.passed("t1", SPLIT - 1, "trips")
    start, services = companions.traces["t1"]
    assert (start, services) == (SPLIT - 1, {"web", "trips"})


def test_lines_without_trace_ids_give_no_finding() -> None:
    records = [
        r.model_copy(update={"trace_id": None}) for r in _traffic(random.Random(9), SPLIT + 20)
    ]
    assert _unreached(records) == []


def test_ranking_puts_the_service_that_dropped_out_first_as_a_code_fault() -> None:
    logs = mine_logs(_traffic(random.Random(10), SPLIT + 20), T0, SPLIT, END)
    ranked = rank_services([], logs, None, 4.0, 60.0)
    assert ranked[0].service == "routes"
    assert ranked[0].fault_type is FaultType.CODE_EXCEPTION
    evidence, _ = build_evidence(ranked, 10)
    (item,) = [e for e in evidence if e.pattern == "unreached"]
    assert item.description.startswith(
        "routes: its lines dropped out of the requests of prices, seats, trips and 1 more: in "
    )


def test_logs_that_begin_after_the_split_are_compared_where_the_data_rose() -> None:
    # Only an alert dated the incident: the lookback's split lies before the first log line,
    # so no request lies before it. Where the series rose together (``onset``), within the
    # logs, the requests before and after can still be compared.
    began, rose = SPLIT + 60, SPLIT + 120
    records = [r for r in _traffic(random.Random(12), rose) if r.timestamp.timestamp() >= began]
    assert _unreached(records) == []
    found = [f for f in mine_logs(records, T0, SPLIT, END, onset=rose) if f.pattern == "unreached"]
    assert [(f.service, f.onset) for f in found] == [("routes", rose)]
    # An onset before the first line compares nothing.
    early = mine_logs(records, T0, SPLIT, END, onset=SPLIT + 30)
    assert not [f for f in early if f.pattern == "unreached"]
