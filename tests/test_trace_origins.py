"""Where failing requests began to fail, read from log lines that carry a trace id.

A three-service chain web -> orders -> stock: when stock's method starts to throw, stock logs
its error first in each trace, and orders and web log theirs milliseconds later. Callers log
more error lines than the callee (two services against one), which is why counting error lines
blames them; the first error of each trace does not.
"""

from __future__ import annotations

import random

import pytest
from trace_support import traced_line as _line

from agent.engine.detect.logs import mine_logs
from agent.engine.detect.traces import ErrorTraces
from agent.engine.evidence import build_evidence
from agent.engine.rank import rank_services
from agent.engine.service_score import ServiceScore
from agent.models import LogRecord
from agent.report import change_text

T0 = 1_767_225_600.0  # window start; split at +600 s, end at +900 s
SPLIT, END = T0 + 600, T0 + 900


def _request(t: float, trace: str, failing: str | None) -> list[LogRecord]:
    """One request through web -> orders -> stock; ``failing`` throws and its callers report
    the failed call, each a few milliseconds after the one it called."""
    lines = [
        _line(t, "web", "12:00:00.001 INFO  c.w.Controller#12 GET /order", trace),
        _line(t + 0.002, "orders", "12:00:00.003 INFO  o.OrderService#40 create order", trace),
        _line(t + 0.004, "stock", "12:00:00.005 INFO  s.StockService#7 reserve item", trace),
    ]
    if failing == "stock":
        lines += [
            _line(t + 0.006, "stock", "12:00:00.007 ERROR s.StockService#9 reserve failed", trace),
            _line(t + 0.009, "orders", "12:00:00.010 ERROR o.OrderService#52 stock call", trace),
            _line(t + 0.012, "web", "12:00:00.013 ERROR c.w.Controller#30 order failed", trace),
            _line(t + 0.013, "web", "12:00:00.014 ERROR c.w.Controller#31 respond 500", trace),
        ]
    return lines


def _traffic(fault_from: float | None, rng: random.Random) -> list[LogRecord]:
    records: list[LogRecord] = []
    t = T0 + rng.uniform(0, 2)
    n = 0
    while t < END:
        failing = "stock" if fault_from is not None and t >= fault_from and n % 3 == 0 else None
        records += _request(t, f"{rng.getrandbits(64):016x}", failing)
        t += rng.uniform(1.0, 3.0)
        n += 1
    return records


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_callee_that_fails_first_in_each_trace_is_the_origin(seed: int) -> None:
    records = _traffic(SPLIT + 30, random.Random(seed))
    origins = [f for f in mine_logs(records, T0, SPLIT, END) if f.pattern == "origin"]
    assert [f.service for f in origins] == ["stock"]
    (origin,) = origins
    assert origin.baseline_count == 0 and origin.incident_count >= 20
    assert origin.followers == {"orders", "web"}
    assert origin.sample is not None and "reserve failed" in origin.sample
    assert SPLIT + 30 <= origin.onset < SPLIT + 40


def test_ranking_puts_the_origin_above_callers_that_log_more_errors() -> None:
    records = _traffic(SPLIT + 30, random.Random(7))
    logs = mine_logs(records, T0, SPLIT, END)
    web_errors = sum(f.incident_count for f in logs if f.service == "web" and f.level == "ERROR")
    stock_errors = sum(
        f.incident_count for f in logs if f.service == "stock" and f.pattern != "origin"
    )
    assert web_errors > stock_errors  # what line counts alone would see
    ranked = rank_services([], logs, None, 4.0, 60.0)
    assert ranked[0].service == "stock"


def test_errors_that_were_already_there_are_not_an_origin() -> None:
    rng = random.Random(5)
    records = _traffic(T0, rng)  # stock failed one request in three all along
    assert not [f for f in mine_logs(records, T0, SPLIT, END) if f.pattern == "origin"]


def test_lines_without_trace_ids_give_no_origin() -> None:
    records = [r.model_copy(update={"trace_id": None}) for r in _traffic(SPLIT, random.Random(9))]
    assert not [f for f in mine_logs(records, T0, SPLIT, END) if f.pattern == "origin"]


def test_lines_may_arrive_in_any_order() -> None:
    traces = ErrorTraces()
    traces.add("t1", 10.5, "web", 1, "web failed")
    traces.add("t1", 10.1, "stock", 2, "stock failed")
    traces.add("t1", 10.3, "orders", 3, "orders failed")
    first = traces.first["t1"]
    assert (first.service, first.later) == ("stock", {"web", "orders"})


def test_trace_ids_that_never_leave_one_service_give_no_origin() -> None:
    # Each service starts its own trace: a failing request's lines share an id only within
    # the service, so the first error of a trace is just any error line.
    records = [
        r.model_copy(update={"trace_id": f"{r.service}-{r.trace_id}"})
        for r in _traffic(SPLIT + 30, random.Random(4))
    ]
    assert not [f for f in mine_logs(records, T0, SPLIT, END) if f.pattern == "origin"]


def test_an_origin_that_timed_out_waiting_weighs_less() -> None:
    from dataclasses import replace

    from agent.engine.service_score import log_weight

    records = _traffic(SPLIT + 30, random.Random(8))
    (origin,) = [f for f in mine_logs(records, T0, SPLIT, END) if f.pattern == "origin"]
    waited = replace(origin, signatures=frozenset({"timeout"}))
    assert log_weight(waited) < log_weight(origin)


def _logged_from(t: float, records: list[LogRecord]) -> list[LogRecord]:
    """Only the lines from ``t`` on: log shipping that began after the split."""
    return [r for r in records if r.timestamp.timestamp() >= t]


def test_errors_there_from_the_first_line_after_the_split_are_not_an_origin() -> None:
    # The logs begin two minutes into the incident part, so no baseline line tells whether
    # stock's failures are new; they come from the very first line on, as steadily as later.
    records = _logged_from(SPLIT + 120, _traffic(T0, random.Random(11)))
    assert not [f for f in mine_logs(records, T0, SPLIT, END) if f.pattern == "origin"]


def test_errors_that_begin_while_the_late_logs_flow_are_an_origin() -> None:
    # The same late logs, but stock begins to fail 80 s after they start: the logs' own
    # first stretch is the baseline that shows the failures are new.
    records = _logged_from(SPLIT + 120, _traffic(SPLIT + 200, random.Random(11)))
    (origin,) = [f for f in mine_logs(records, T0, SPLIT, END) if f.pattern == "origin"]
    assert origin.service == "stock" and origin.score >= 10


def test_late_logs_rate_an_origin_over_the_minutes_they_cover() -> None:
    # Logs from two minutes into the five-minute incident part: a rate over the whole part
    # would understate the failures, and "0/min before" would claim a baseline no line is in.
    records = _logged_from(SPLIT + 120, _traffic(SPLIT + 200, random.Random(11)))
    (origin,) = [f for f in mine_logs(records, T0, SPLIT, END) if f.pattern == "origin"]
    stamps = [r.timestamp.timestamp() for r in records]
    covered = (max(stamps) - min(stamps)) / 60.0
    assert origin.incident_rate == pytest.approx(origin.incident_count / covered)
    assert origin.incident_rate > origin.incident_count / ((END - SPLIT) / 60.0) * 1.5

    (evidence,), _ = build_evidence([ServiceScore("stock", logs=[origin])], limit=5)
    assert evidence.baseline.mean is None  # no line there: nothing was measured
    assert "while logs ran" in evidence.description and "after the baseline" in evidence.description
    assert change_text(evidence).startswith("no log lines in the baseline")
