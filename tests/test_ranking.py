"""Service ranking and fault-type hypotheses over hand-made findings."""

from __future__ import annotations

import pytest
from findings_support import T0, THR, log_finding, metric

from agent.engine.hosts import colocated
from agent.engine.hypothesis import fault_scores, hypothesize
from agent.engine.rank import rank_services
from agent.models import Edge, FaultType, Signal, SignalKind, Topology


def test_cause_signal_outranks_an_equally_strong_symptom() -> None:
    ranked = rank_services(
        [metric("db", "cpu", 20), metric("api", "latency_p99", 20)], [], None, THR, 15
    )
    assert [s.service for s in ranked] == ["db", "api"]


@pytest.mark.parametrize("node", ["node_cpu_seconds_total", "NodeCpuUsageRate(%)"])
def test_a_pods_own_cpu_outranks_the_nodes_it_runs_on(node: str) -> None:
    # The node's series moves for every pod on it: it cannot single out the one it was
    # collected for, however far it moved.
    ranked = rank_services(
        [metric("cart", node, 40), metric("front", "container_cpu_usage_seconds_total", 20)],
        [],
        None,
        THR,
        60,
    )
    assert [s.service for s in ranked] == ["front", "cart"]


def test_host_level_series_are_told_apart_by_name() -> None:
    from agent.engine.detect.kinds import host_level
    from agent.models import Signal

    def named(name: str) -> Signal:
        return Signal(service="s", name=name, timestamps=[], values=[])

    host = ["node_filesystem_avail_bytes", "kube_node_status_condition", "NodeMemoryUsageRate(%)"]
    own = ["nodejs_heap_size_used_bytes", "container_cpu_usage_seconds_total", "node"]
    assert all(host_level(named(n)) for n in host)
    assert not any(host_level(named(n)) for n in own)


def test_later_onset_is_discounted() -> None:
    ranked = rank_services(
        [metric("a", "errors", 20, onset=T0 + 600), metric("b", "errors", 20, onset=T0)],
        [],
        None,
        THR,
        15,
    )
    assert ranked[0].service == "b"
    assert any("after the incident became visible" in r for r in ranked[1].reasons)


def test_call_graph_demotes_callers_of_an_anomalous_dependency() -> None:
    topo = Topology(
        services=["front", "cart", "redis"],
        edges=[Edge(caller="front", callee="cart"), Edge(caller="cart", callee="redis")],
    )
    findings = [
        metric("front", "errors", 40),
        metric("cart", "errors", 35),
        metric("redis", "latency", 15),
    ]
    without = rank_services(findings, [], None, THR, 15)
    with_graph = rank_services(findings, [], topo, THR, 15)
    assert without[0].service == "front"
    assert with_graph[0].service == "redis"


def test_service_named_in_peers_refused_errors_becomes_a_candidate() -> None:
    logs = [
        log_finding(
            "checkout",
            "connect to payment-gw failed: connection refused",
            30,
            signatures=frozenset({"refused"}),
            mentions=frozenset({"payment-gw"}),
        ),
    ]
    ranked = rank_services([metric("checkout", "errors", 12)], logs, None, THR, 15)
    assert ranked[0].service == "payment-gw"
    assert ranked[0].fault_type is FaultType.DEPENDENCY_OUTAGE


@pytest.mark.parametrize(
    ("metrics", "logs", "fault"),
    [
        (
            [metric("s", "container_cpu_usage_seconds_total", 30), metric("s", "latency", 10)],
            [],
            FaultType.CPU_SATURATION,
        ),
        (
            [metric("s", "mem", 25), metric("s", "restarts", 8, kind=SignalKind.CHANGE)],
            [],
            FaultType.MEMORY_LEAK,
        ),
        ([metric("s", "disk_used_percent", 20)], [], FaultType.DISK_FULL),
        (
            [metric("s", "db_pool_in_use", 20), metric("s", "latency", 15)],
            [],
            FaultType.DB_POOL_EXHAUSTION,
        ),
        (
            [metric("s", "app_version", 50, kind=SignalKind.CHANGE), metric("s", "errors", 20)],
            [],
            FaultType.BAD_DEPLOY,
        ),
        (
            [metric("s", "tcp_retransmits", 20), metric("s", "errors", 8)],
            [],
            FaultType.PACKET_LOSS,
        ),
        ([metric("s", "latency_p99", 25)], [], FaultType.NETWORK_LATENCY),
        (
            [metric("s", "errors", 25)],
            [
                log_finding(
                    "s", "NullPointerException in handler", 20, signatures=frozenset({"exception"})
                )
            ],
            FaultType.CODE_EXCEPTION,
        ),
        ([metric("s", "requests", 25, direction=0)], [], FaultType.DEPENDENCY_OUTAGE),
        (
            [],
            [
                log_finding(
                    "s", "write failed: No space left on device", 25, signatures=frozenset({"disk"})
                )
            ],
            FaultType.DISK_FULL,
        ),
    ],
)
def test_fault_hypothesis_follows_the_evidence(metrics, logs, fault: FaultType) -> None:
    assert hypothesize(fault_scores(metrics, logs, THR)) is fault


def test_no_evidence_means_unknown_fault() -> None:
    assert hypothesize(fault_scores([], [], THR)) is FaultType.UNKNOWN


def test_ranking_is_deterministic_on_ties() -> None:
    findings = [metric("b", "cpu", 20), metric("a", "cpu", 20)]
    assert [s.service for s in rank_services(findings, [], None, THR, 15)] == ["a", "b"]


def test_a_deploy_after_the_alerted_symptoms_is_not_the_cause() -> None:
    findings = [
        metric("front", "latency_p99", 20, onset=T0),
        metric("cart", "deployment_generation", 50, onset=T0 + 900, kind=SignalKind.CHANGE),
    ]
    ranked = rank_services(findings, [], None, THR, 15, alerted=("front",))
    assert ranked[0].service == "front"


MEASURED = frozenset({SignalKind.LATENCY, SignalKind.ERRORS, SignalKind.RESOURCE})


def test_a_cpu_burst_that_leaves_the_service_itself_healthy_is_discounted() -> None:
    findings = [metric("batch", "cpu_usage", 30), metric("front", "latency_p99", 10)]
    blind = {s.service: s.score for s in rank_services(findings, [], None, THR, 15)}
    seeing = {
        s.service: s
        for s in rank_services(
            findings, [], None, THR, 15, coverage={"batch": MEASURED, "front": MEASURED}
        )
    }
    assert seeing["batch"].score < 0.6 * blind["batch"]
    assert "its own latency and errors stayed normal" in seeing["batch"].reasons
    assert seeing["front"].score == pytest.approx(blind["front"])


@pytest.mark.parametrize(("blip_after", "discounted"), [(60, False), (2400, True)])
def test_only_a_symptom_while_the_resource_deviated_counts_as_its_harm(
    blip_after: float, discounted: bool
) -> None:
    # CPU up for 8 minutes; an error blip during it is the CPU's harm, one 40 minutes later is
    # not: the burst still left the service itself healthy.
    from dataclasses import replace

    cpu = replace(metric("batch", "cpu_usage", 30), until=T0 + 480)
    blip = metric("batch", "error_ratio", 8, onset=T0 + blip_after, kind=SignalKind.ERRORS)
    findings = [cpu, blip, metric("front", "latency_p99", 10)]
    ranked = rank_services(
        findings, [], None, THR, 15, coverage={"batch": MEASURED, "front": MEASURED}
    )
    batch = next(s for s in ranked if s.service == "batch")
    assert ("its own latency and errors stayed normal" in batch.reasons) is discounted


def test_a_dependency_whose_latency_stayed_normal_does_not_explain_a_slow_caller() -> None:
    topo = Topology(edges=[Edge(caller="front", callee="batch")])
    findings = [metric("batch", "cpu_usage", 30), metric("front", "latency_p99", 20)]
    unmeasured = rank_services(findings, [], topo, THR, 15)
    measured = rank_services(
        findings, [], topo, THR, 15, coverage={"batch": MEASURED, "front": MEASURED}
    )
    before = {s.service: s for s in unmeasured}["front"]
    assert any("its dependency batch" in r for r in before.reasons)
    after = {s.service: s for s in measured}["front"]
    assert not any("its dependency batch" in r for r in after.reasons)
    assert after.score > before.score


def test_errors_at_a_service_we_do_not_run_read_as_that_dependency_failing() -> None:
    errors = [metric("payment-gateway", "http_errors", 40, kind=SignalKind.ERRORS)]
    assert hypothesize(fault_scores(errors, [], THR)) is FaultType.CODE_EXCEPTION
    assert hypothesize(fault_scores(errors, [], THR, external=True)) is FaultType.DEPENDENCY_OUTAGE


def test_network_interface_errors_read_as_packet_loss() -> None:
    findings = [
        metric("promo", "k8s.pod.network.errors", 50),
        metric("promo", "http_server_errors", 50, kind=SignalKind.ERRORS),
    ]
    assert hypothesize(fault_scores(findings, [], THR)) is FaultType.PACKET_LOSS


@pytest.mark.parametrize(
    ("latency_base", "expected"), [(0.1, "packet_loss"), (0.8, "code_exception")]
)
def test_errors_with_a_several_fold_slowdown_read_as_the_network(
    latency_base: float, expected: str
) -> None:
    # The latency series stands at 1.0 at its peak: 10x or 1.25x its baseline median.
    findings = [
        metric("shipping", "http_server_errors", 50, kind=SignalKind.ERRORS),
        metric("shipping", "http_server_duration_p99", 40, base=latency_base),
    ]
    assert hypothesize(fault_scores(findings, [], THR)).value == expected


def test_window_level_log_statistics_do_not_date_the_incident() -> None:
    split = T0 - 600  # an error share is dated at the window's split, not at an event
    findings = [metric("db", "disk_free_bytes", 40, onset=T0, direction=-1)]
    logs = [log_finding("ads", "error share 1% -> 9%", 30, onset=split, pattern="error_rate")]
    ranked = {s.service: s for s in rank_services(findings, logs, None, THR, 15)}
    assert ranked["ads"].onset is None
    assert not any("after the incident became visible" in r for r in ranked["db"].reasons)


@pytest.mark.parametrize(("cpu_direction", "doubted"), [(1, True), (-1, False)])
def test_logs_that_went_quiet_while_the_metrics_show_work_are_not_an_outage(
    cpu_direction: int, doubted: bool
) -> None:
    # A user's workflow logs in bursts: its lines stop, yet its pod keeps using CPU. Logs
    # going quiet while the CPU falls too is a service that stopped working.
    quiet = log_finding("cancel", "<all log lines>", 30, level="INFO", pattern="vanished")
    cpu = metric("cancel", "cpu_usage", 6, direction=cpu_direction, kind=SignalKind.RESOURCE)
    ranked = rank_services(
        [cpu, metric("front", "latency_p99", 10)],
        [quiet],
        None,
        THR,
        15,
        coverage={"cancel": MEASURED, "front": MEASURED},
    )
    cancel = next(s for s in ranked if s.service == "cancel")
    assert ("its logs went quiet, but its metrics show it still at work" in cancel.reasons) is (
        doubted
    )
    assert (cancel.logs[0].score == THR) is doubted


def _node_cpu(service: str, values: list[float], **labels: str) -> Signal:
    return Signal(
        service=service,
        name="NodeCpuUsageRate(%)",
        timestamps=[T0 + 60 * i for i in range(len(values))],
        values=values,
        labels=labels,
    )


def test_services_whose_node_series_match_share_a_node() -> None:
    busy = [20.0, 22.0, 21.0, 60.0, 65.0, 64.0]
    other = [30.0, 31.0, 29.0, 30.0, 32.0, 31.0]
    mates = colocated(
        [
            _node_cpu("stress", busy),
            _node_cpu("gateway", busy),
            _node_cpu("orders", other),
            _node_cpu("idle-a", [0.0] * 6),  # equal because idle, not because shared
            _node_cpu("idle-b", [0.0] * 6),
            _node_cpu("cart", other[:3], node="n7"),
            _node_cpu("ads", [1.0, 2.0], node="n7"),
        ]
    )
    assert mates["stress"] == {"gateway"} and mates["gateway"] == {"stress"}
    assert mates["cart"] == {"ads"}
    assert "orders" not in mates and "idle-a" not in mates


@pytest.mark.parametrize(("shared", "discounted"), [(True, False), (False, True)])
def test_a_cpu_hog_whose_node_mate_got_slow_is_a_noisy_neighbour(
    shared: bool, discounted: bool
) -> None:
    findings = [metric("stress", "cpu_usage", 30), metric("gateway", "latency_p99", 20)]
    ranked = rank_services(
        findings,
        [],
        None,
        THR,
        15,
        coverage={"stress": MEASURED, "gateway": MEASURED},
        colocated={"stress": frozenset({"gateway"})} if shared else {},
    )
    stress = next(s for s in ranked if s.service == "stress")
    assert ("its own latency and errors stayed normal" in stress.reasons) is discounted
    assert (ranked[0].service == "stress") is shared
