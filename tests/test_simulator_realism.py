"""The simulator's realism profile: each feature on a small forced case, the profile's draws,
and the ``sim-real`` suite. The plain simulator must not change (its own tests pin it)."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.engine.detect.kinds import side_of
from agent.models import FaultType, LogRecord
from agent.snapshot import load_snapshot
from evals.runner import REAL_SUITE, expand_suites, simulated_cases
from evals.simulator import Scenario, simulate
from evals.simulator.realism import CLIENT_NAMES, Realism

_HEX32 = re.compile(r"\b[0-9a-f]{32}\b")
SMALL = 8  # services: enough for callers, quick to simulate
_LOGBACK = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d{3}) (ERROR|WARN |INFO |DEBUG) [a-z]\.[a-z]\.\w+#\d+ - "
)


def _window_mean(values: np.ndarray, start: int, end: int) -> float:
    return float(np.nanmean(values[start:end]))


# --- the profile ----------------------------------------------------------------------------


def test_default_is_not_the_profile() -> None:
    plain, real = simulate(25003), simulate(25003, realism=False)
    assert plain.snapshot == real.snapshot
    assert plain.realism is None and "realism" not in (plain.snapshot.ground_truth.note or "")


def test_profile_is_deterministic_and_recorded_in_the_note() -> None:
    first, again = simulate(25004, realism=True), simulate(25004, realism=True)
    assert first.snapshot == again.snapshot
    assert first.realism is not None
    note = first.snapshot.ground_truth.note or ""
    assert f"realism: {', '.join(first.realism.names()) or 'none'}" in note


def test_each_feature_is_drawn_on_some_seeds_and_off_on_others() -> None:
    drawn = [simulate(seed, realism=True).realism for seed in range(25000, 25012)]
    for name in Realism().__dataclass_fields__:
        flags = {getattr(r, name) for r in drawn if r is not None}
        assert flags == {True, False}, name


def test_sim_real_suite_is_registered() -> None:
    (suite,) = expand_suites([REAL_SUITE])
    assert suite.name == REAL_SUITE and suite.path is None
    (case,) = simulated_cases(range(25006, 25007), suite=REAL_SUITE)
    assert case.name == "sim-real-25006"
    assert "realism:" in (case.load().ground_truth.note or "")


def test_rca_simulate_realism_writes_the_profile(tmp_path: Path) -> None:
    plain, real = tmp_path / "plain", tmp_path / "real"
    for args in (("--out", plain), ("--out", real, "--realism")):
        result = CliRunner().invoke(cli, ["simulate", "--seed", "25004", *map(str, args)])
        assert result.exit_code == 0, result.output
    truth = load_snapshot(real).ground_truth
    assert truth is not None and "realism:" in (truth.note or "")
    assert "realism" not in (load_snapshot(plain).ground_truth.note or "")


# --- 1. callee-side network delay -----------------------------------------------------------


def test_network_delay_shows_in_callers_client_latency_not_in_the_callee() -> None:
    scenario = simulate(
        2, fault=FaultType.NETWORK_LATENCY, services=SMALL, realism=Realism(client_side=True)
    )
    plan, graph = scenario.plan, scenario.graph
    callers = graph.callers(plan.service)
    assert callers
    client = {
        s.service: s
        for s in scenario.snapshot.signals
        if side_of(s) == "client" and s.service in callers
    }
    assert set(client) == set(callers)
    before = (max(0, plan.onset - 30), plan.onset)
    served = scenario.telemetry.services[plan.service].latency[1]
    server_rise = _window_mean(served, plan.onset, plan.end) - _window_mean(served, *before)
    rises = []
    for signal in client.values():
        values = np.array([np.nan if v is None else v for v in signal.values])
        scale = 1000.0 if signal.unit == "ms" else 1.0
        rise = _window_mean(values, plan.onset, plan.end) - _window_mean(values, *before)
        rises.append(rise / scale)
    assert max(rises) > 0.05  # at least 50 ms more waiting at some caller
    assert max(rises) > 3 * max(server_rise, 0.0)


def test_without_the_profile_the_callee_serves_the_whole_delay() -> None:
    scenario = simulate(2, fault=FaultType.NETWORK_LATENCY, services=SMALL)
    plan = scenario.plan
    served = scenario.telemetry.services[plan.service].latency[1]
    before = _window_mean(served, max(0, plan.onset - 30), plan.onset)
    assert _window_mean(served, plan.onset, plan.end) - before > 0.05
    client_names = {name for name, _, _ in CLIENT_NAMES.values()}
    assert not any(s.name in client_names for s in scenario.snapshot.signals)


# --- 2. levels only in the text -------------------------------------------------------------


def test_levels_live_only_in_the_text() -> None:
    scenario = simulate(4, fault=FaultType.CODE_EXCEPTION, realism=Realism(text_levels=True))
    logs = scenario.snapshot.logs
    texts = [(r, _LOGBACK.match(r.message)) for r in logs]
    wrapped = [(r, m) for r, m in texts if m]
    assert len(wrapped) > len(logs) / 2
    errors = [r for r, m in wrapped if m.group(2) == "ERROR"]
    assert errors, "the fault's errors must still be there, in the text"
    assert all(r.level == "INFO" for r, _ in wrapped)
    assert all(m.group(1) == r.timestamp.strftime("%H:%M:%S.%f")[:-3] for r, m in wrapped)


# --- 3. partial log coverage ----------------------------------------------------------------


def test_logs_cover_only_the_minutes_around_the_onset() -> None:
    scenario = simulate(3, realism=Realism(partial_logs=True))
    truth, window = scenario.snapshot.ground_truth, scenario.snapshot.meta.window
    assert truth is not None
    logs = scenario.snapshot.logs
    assert logs
    first, last = logs[0].timestamp, logs[-1].timestamp
    assert truth.onset - timedelta(seconds=90) <= first <= truth.onset - timedelta(seconds=20)
    assert truth.onset + timedelta(minutes=1) <= last <= truth.onset + timedelta(seconds=240)
    assert window.start < first - timedelta(minutes=5)  # the metrics see far more than the logs


# --- 4. an earlier fault on the same pod ----------------------------------------------------


def _touched(scenario: Scenario, start: int, end: int) -> float:
    """How much the faulty service's most moved series rose in [start, end) over before."""
    series = scenario.telemetry.services[scenario.plan.service]
    rows = [series.latency[2], series.error_ratio, *(p.cpu for p in series.pods)]
    ratios = []
    for row in rows:
        base = _window_mean(row, 0, start)
        ratios.append(_window_mean(row, start, end) / max(base, 1e-6))
    return max(ratios)


def test_an_earlier_fault_on_the_same_pods_ends_before_the_onset() -> None:
    scenario = simulate(
        1,
        fault=FaultType.CPU_SATURATION,
        services=SMALL,
        realism=Realism(previous_fault=True, minute_scrapes=True),
    )
    earlier, plan = scenario.previous, scenario.plan
    assert earlier is not None
    assert earlier.service == plan.service and earlier.pods == plan.pods
    assert 1 <= earlier.onset < earlier.end <= plan.onset - 2
    assert _touched(scenario, earlier.onset, earlier.end) > 1.3
    plain = simulate(
        1, fault=FaultType.CPU_SATURATION, services=SMALL, realism=Realism(minute_scrapes=True)
    )
    assert plain.previous is None
    assert _touched(plain, earlier.onset, earlier.end) < _touched(
        scenario, earlier.onset, earlier.end
    )


# --- 5. one-minute scrapes, five-minute faults ----------------------------------------------


@pytest.mark.parametrize("seed", [0, 7])
def test_minute_scrapes_with_ten_minutes_of_baseline(seed: int) -> None:
    scenario = simulate(seed, realism=Realism(minute_scrapes=True))
    plan, snapshot = scenario.plan, scenario.snapshot
    assert scenario.telemetry.timeline.resolution == 60
    assert plan.onset == 10 and 4 <= plan.duration <= 6
    truth, window = snapshot.ground_truth, snapshot.meta.window
    assert truth is not None
    assert truth.onset - window.start == timedelta(minutes=10)
    assert window.end - truth.onset == timedelta(minutes=5)
    steps = {b - a for s in snapshot.signals for a, b in pairwise(s.timestamps)}
    assert steps == {60.0}


# --- 6. trace ids along the call path -------------------------------------------------------


def _by_trace(logs: list[LogRecord]) -> dict[str, list[LogRecord]]:
    traces: dict[str, list[LogRecord]] = defaultdict(list)
    for record in logs:
        if record.trace_id:
            traces[record.trace_id].append(record)
    return traces


def test_trace_ids_are_shared_along_call_edges() -> None:
    scenario = simulate(
        6, fault=FaultType.CODE_EXCEPTION, services=SMALL, realism=Realism(shared_traces=True)
    )
    graph = scenario.graph
    shared = 0
    callee_first = callee_after = 0
    for lines in _by_trace(scenario.snapshot.logs).values():
        services = {r.service for r in lines}
        if len(services) < 2:
            continue
        shared += 1
        # where the text repeats the trace id, it is the shared one
        assert all(set(_HEX32.findall(r.message)) <= {r.trace_id} for r in lines)
        first = {s: min(r.timestamp for r in lines if r.service == s) for s in services}
        errors = {
            s: min(r.timestamp for r in lines if r.service == s and r.level == "ERROR")
            for s in services
            if any(r.service == s and r.level == "ERROR" for r in lines)
        }
        for caller in services:
            for callee in set(graph.callees(caller)) & services:
                if caller in errors and callee in errors:
                    assert errors[callee] < errors[caller]  # the callee fails first
                    callee_first += 1
                elif callee not in errors:
                    assert first[caller] < first[callee] <= first[caller] + timedelta(seconds=0.1)
                    callee_after += 1
    assert shared > 50
    assert callee_first > 0 and callee_after > 0
    plain = simulate(6, fault=FaultType.CODE_EXCEPTION, services=SMALL)
    assert all(len({r.service for r in v}) == 1 for v in _by_trace(plain.snapshot.logs).values())
