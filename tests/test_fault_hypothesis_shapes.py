"""Which fault a service's findings name, where the shape of a series tells faults apart."""

from __future__ import annotations

import numpy as np
import pytest
from findings_support import T0, THR, log_finding

from agent.engine.detect.series import SeriesFinding, score_signal
from agent.engine.hypothesis import fault_scores, hypothesize
from agent.models import FaultType, Signal

STEP = 60.0
SPLIT = T0 + 10 * STEP  # ten baseline minutes, then the incident


def _finding(name: str, values: list[float]) -> SeriesFinding:
    signal = Signal(
        service="cart",
        pod="cart-7d9f-abcde",
        name=name,
        resolution_s=STEP,
        timestamps=[T0 + i * STEP for i in range(len(values))],
        values=values,
    )
    found = score_signal(signal, SPLIT, THR)
    assert found is not None, name
    return found


def _quiet(level: float, rng: np.random.Generator) -> list[float]:
    return list(level * (1 + rng.normal(0, 0.02, 10)))


@pytest.mark.parametrize("seed", [3, 17, 29])
def test_memory_that_steps_up_with_the_cpu_is_the_hogs_working_set(seed: int) -> None:
    # A stress process: CPU goes to its limit and the memory it allocates is there in the
    # same minute, at a larger relative rise than the CPU's.
    rng = np.random.default_rng(seed)
    cpu = _finding("container_cpu_usage_percent", [*_quiet(25, rng), 85, 99, 97, 98, 96])
    memory = _finding("container_memory_working_set_mib", [*_quiet(16, rng), 88, 84, 86, 87, 85])
    assert hypothesize(fault_scores([cpu, memory], [], THR)) is FaultType.CPU_SATURATION


@pytest.mark.parametrize("seed", [3, 17, 29])
def test_memory_that_climbs_is_a_leak_even_when_the_cpu_rises_with_it(seed: int) -> None:
    # A leak: memory grows minute after minute, and collection pauses drive the CPU up.
    rng = np.random.default_rng(seed)
    cpu = _finding("container_cpu_usage_percent", [*_quiet(25, rng), 70, 85, 95, 98, 96])
    memory = _finding("container_memory_working_set_mib", [*_quiet(16, rng), 30, 48, 66, 84, 99])
    assert hypothesize(fault_scores([cpu, memory], [], THR)) is FaultType.MEMORY_LEAK


def test_a_memory_step_with_no_cpu_rise_is_still_read_as_memory() -> None:
    rng = np.random.default_rng(5)
    memory = _finding("container_memory_working_set_mib", [*_quiet(16, rng), 88, 84, 86, 87, 85])
    assert hypothesize(fault_scores([memory], [], THR)) is FaultType.MEMORY_LEAK


def _latency(name: str, before: float, after: float, seed: int) -> SeriesFinding:
    rng = np.random.default_rng(seed)
    return _finding(name, _quiet(before, rng) + [after] * 5)


@pytest.mark.parametrize("seed", [3, 17, 29])
def test_waiting_longer_on_callees_is_not_the_services_own_network_fault(seed: int) -> None:
    # Its client-side latency (what it waits on) rose and it logs new errors: its callees
    # answer slowly or not at all, which is evidence about them (agent/engine/waits.py); what
    # is wrong here is what its own errors say.
    waits = _latency("http_client_request_duration_p99", 0.02, 12.0, seed)
    errors = log_finding("cart", "ERROR CartServiceImpl#getCart null", 8.0)
    assert hypothesize(fault_scores([waits], [errors], THR)) is FaultType.CODE_EXCEPTION
    assert hypothesize(fault_scores([waits], [], THR)) is FaultType.UNKNOWN


@pytest.mark.parametrize("seed", [3, 17, 29])
def test_a_slower_serving_latency_still_reads_as_the_network(seed: int) -> None:
    served = _latency("http_server_request_duration_p99", 0.02, 0.4, seed)
    errors = log_finding("cart", "ERROR CartServiceImpl#getCart null", 5.0)
    assert hypothesize(fault_scores([served], [errors], THR)) is FaultType.NETWORK_LATENCY
