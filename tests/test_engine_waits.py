"""Callers' waits, regime-aware baselines, onsets from the data and toss-up notes, on small
synthetic cases."""

from __future__ import annotations

import numpy as np
import pytest
from findings_support import T0, THR, log_finding, metric

from agent.engine.detect.kinds import callee_of, side_of
from agent.engine.detect.series import recent_regime, score_signal
from agent.engine.onset import onset_from_data
from agent.engine.pipeline import _undecided
from agent.engine.rank import rank_services
from agent.engine.service_score import ServiceScore
from agent.models import Edge, FaultType, Signal, SignalKind, Topology


def _signal(name: str, labels: dict[str, str] | None = None, service: str = "api") -> Signal:
    return Signal(service=service, name=name, timestamps=[T0], values=[1.0], labels=labels or {})


@pytest.mark.parametrize(
    ("name", "labels", "side"),
    [
        ("PodClientLatencyP90(s)", {}, "client"),
        ("http.client.request.duration", {}, "client"),
        ("grpc_server_handling_seconds", {}, "server"),
        ("http_server_duration_seconds", {}, "server"),
        ("istio_request_duration_milliseconds", {"reporter": "source"}, "client"),
        ("istio_request_duration_milliseconds", {"reporter": "destination"}, "server"),
        ("request_latency", {"destination_service": "cart.shop.svc.cluster.local"}, "client"),
        ("request_latency", {}, None),
        ("clientele_count", {}, None),
    ],
)
def test_the_side_of_a_series_comes_from_its_name_or_labels(
    name: str, labels: dict[str, str], side: str | None
) -> None:
    assert side_of(_signal(name, labels)) == side


def test_a_per_edge_series_names_its_callee_by_its_short_dns_name() -> None:
    assert callee_of(_signal("lat", {"destination_service": "cart.shop.svc"})) == "cart"
    assert callee_of(_signal("lat", {"destination_service": "api.shop.svc"})) is None


def _wait(service: str, score: float = 30.0, **labels: str) -> object:
    f = metric(service, "client_latency_p99", score, kind=SignalKind.LATENCY)
    signal = f.signal.model_copy(update={"labels": labels})
    return type(f)(**{**f.__dict__, "signal": signal})


def _shop() -> Topology:
    edges = [("front", "cart"), ("front", "ads"), ("checkout", "cart"), ("checkout", "mail")]
    edges += [("reco", "ads")]
    return Topology(
        services=["front", "checkout", "reco", "cart", "ads", "mail"],
        edges=[Edge(caller=a, callee=b) for a, b in edges],
    )


def test_the_callee_that_all_its_callers_wait_on_leads() -> None:
    # front and checkout wait; both call cart; ads' other caller (reco) is fine, mail's
    # only caller waits but only one of the two waiting callers calls it.
    ranked = rank_services(
        [_wait("front"), _wait("checkout")],  # type: ignore[list-item]
        [],
        _shop(),
        THR,
        60,
        waiters=frozenset({"front", "checkout", "reco"}),
    )
    assert ranked[0].service == "cart"
    assert ranked[0].fault_type is FaultType.NETWORK_LATENCY
    assert ranked[0].waited_by == ["front", "checkout"] or set(ranked[0].waited_by) == {
        "front",
        "checkout",
    }
    assert {"front", "checkout"}.isdisjoint({s.service for s in ranked[:1]})
    ads = next(s for s in ranked if s.service == "ads")
    assert ads.score < ranked[0].score


def test_a_per_edge_wait_blames_its_callee_without_a_topology() -> None:
    ranked = rank_services(
        [_wait("front", destination_service="pay")],  # type: ignore[list-item]
        [],
        None,
        THR,
        60,
        waiters=frozenset({"front"}),
        observed_edges=frozenset({("front", "pay")}),
    )
    assert ranked[0].service == "pay"


def test_without_callers_measured_a_wait_stays_a_weak_symptom_of_the_waiter() -> None:
    ranked = rank_services(
        [_wait("front"), metric("db", "cpu_usage", 12.0)],  # type: ignore[list-item]
        [],
        None,
        THR,
        60,
    )
    assert ranked[0].service == "db"


def test_the_baseline_drops_a_raised_older_level() -> None:
    rng = np.random.default_rng(7)
    base = np.concatenate([95 + rng.normal(0, 3, 4), 8 + rng.normal(0, 1, 6)])
    assert recent_regime(base).size == 6
    assert float(np.median(recent_regime(base))) < 12


@pytest.mark.parametrize("seed", range(5))
def test_a_steady_or_late_rising_baseline_is_kept_whole(seed: int) -> None:
    rng = np.random.default_rng(seed)
    steady = 10 + rng.normal(0, 1, 12)
    assert recent_regime(steady).size == 12
    rising = np.concatenate([10 + rng.normal(0, 1, 8), 40 + rng.normal(0, 1, 4)])
    assert recent_regime(rising).size == 12


def test_one_spike_in_the_older_baseline_is_not_an_older_level() -> None:
    # Its mean says "an older, higher level"; its median says one outlier.
    rng = np.random.default_rng(3)
    base = 0.09 + rng.normal(0, 0.004, 10)
    base[3] = 0.425
    assert recent_regime(base).size == 10


def test_a_burst_after_an_earlier_burst_on_the_same_series_is_found() -> None:
    values = [98.0, 101, 97, 99, 8, 7, 9, 8, 7, 8, 85, 90, 88, 92, 87]
    signal = Signal(
        service="reco",
        name="cpu_usage_percent",
        timestamps=[T0 + 60 * i for i in range(15)],
        values=values,
    )
    finding = score_signal(signal, T0 + 600, THR)
    assert finding is not None and finding.direction == 1
    assert finding.baseline.median is not None and finding.baseline.median < 10


def _rising(service: str, at: int, earlier: int | None = None, n: int = 20) -> Signal:
    rng = np.random.default_rng(abs(hash((service, at))) % 2**32)
    values = 10 + rng.normal(0, 0.5, n)
    values[at:] += 20
    if earlier is not None:
        values[earlier : earlier + 3] += 30
    return Signal(
        service=service,
        name="latency_p99",
        timestamps=[T0 + 15 * i for i in range(n)],
        values=values.tolist(),
    )


def test_the_onset_is_the_rise_that_holds_until_the_alert_not_an_earlier_bump() -> None:
    signals = [_rising(f"s{i}", at=14, earlier=4) for i in range(6)]
    onset = onset_from_data(signals, T0, T0 + 15 * 16, 15)
    assert onset is not None
    assert onset.at == T0 + 15 * 14
    assert onset.series == 6


def test_no_onset_without_a_rise() -> None:
    flat = [_rising(f"s{i}", at=30) for i in range(4)]  # the rise is past the data
    assert onset_from_data(flat, T0, T0 + 15 * 19, 15) is None


def test_two_leaders_within_a_hair_are_named_with_what_would_settle_it() -> None:
    a = ServiceScore("cart", score=1.0, waited_by=["front"])
    b = ServiceScore("ads", score=0.95)
    note = _undecided([a, b])
    assert note is not None and "cart" in note and "ads" in note and "per-edge" in note
    assert _undecided([a, ServiceScore("ads", score=0.5)]) is None


def test_a_tie_names_every_leader_in_it_not_only_the_first_two() -> None:
    # Three callees with nothing of their own, one caller waiting: listed by name, the first
    # of them is no likelier than the others, and the note must not read as a two-way call.
    tied = [ServiceScore(name, score=2.02, waited_by=["checkout"]) for name in ("a", "b", "c")]
    note = _undecided([*tied, ServiceScore("d", score=1.0)])
    assert note is not None
    assert note.startswith("the data cannot decide between a, b and c (score 2.02 each):")
    many = [ServiceScore(f"s{i}", score=1.0 - i / 100) for i in range(6)]
    listed = _undecided(many)
    assert listed is not None
    assert "s0 (score 1.00), s1 (score 0.99), s2 (score 0.98), s3 (score 0.97) and 2 more" in listed
    assert "traces through them" in listed


def test_a_spike_in_the_last_sample_before_the_alert_is_not_the_onset() -> None:
    signals = [_rising(f"s{i}", at=10) for i in range(3)]
    spike = _rising("alerted", at=30)
    values = list(spike.values)
    values[16] = 500.0  # the alert's own last-minute spike
    signals.append(spike.model_copy(update={"values": values}))
    onset = onset_from_data(signals, T0, T0 + 15 * 16, 15)
    assert onset is not None and onset.at == T0 + 15 * 10


def _latency(service: str, baseline: list[float | None], incident: list[float | None]) -> Signal:
    values = baseline + incident
    return Signal(
        service=service,
        name="http_server_latency_p99",
        unit="s",
        timestamps=[T0 + 60 * i for i in range(len(values))],
        values=values,
    )


def test_a_quantile_that_repeats_one_value_is_pinned() -> None:
    # An empty histogram reads as its lowest bucket bound, scrape after scrape.
    flat = [0.0046] * 8 + [0.04, 0.019]
    finding = score_signal(_latency("admin", flat, [0.0046, 18.0, 18.0]), T0 + 600, THR)
    assert finding is not None and finding.pinned
    rng = np.random.default_rng(3)
    busy = (0.2 + rng.normal(0, 0.02, 10)).tolist()
    finding = score_signal(_latency("cart", busy, [0.9, 0.95, 1.0]), T0 + 600, THR)
    assert finding is not None and not finding.pinned


def test_a_service_that_served_nothing_is_discounted_unless_it_logs_its_own_failures() -> None:
    findings = [metric("idle", "syscall_read_total", 40.0), metric("api", "cpu_usage", 9.0)]
    ranked = rank_services(findings, [], None, THR, 60, idle=frozenset({"idle"}))
    assert ranked[0].service == "api"
    assert any("served no requests" in r for r in ranked[-1].reasons)
    errors = log_finding("idle", "order <*> failed", 12.0)
    ranked = rank_services(findings, [errors], None, THR, 60, idle=frozenset({"idle"}))
    assert not any("served no requests" in r for s in ranked for r in s.reasons)


def test_idle_means_every_serving_latency_held_one_value() -> None:
    from agent.engine.pipeline import _idle

    empty = _latency("idle", [0.0] * 10, [0.0] * 5)
    moving = _latency("api", [0.2, 0.21, 0.19] * 3 + [0.2], [0.3] * 5)
    waiting = _latency("api2", [0.0] * 10, [0.0] * 5).model_copy(
        update={"name": "http_client_latency_p99"}
    )
    assert _idle([empty, moving, waiting]) == frozenset({"idle"})


def test_a_quantile_with_no_value_in_many_scrapes_is_pinned() -> None:
    # Minutes without a request have no quantile; the others are over a handful of requests.
    rng = np.random.default_rng(11)
    gappy: list[float | None] = [float(v) for v in 0.02 + rng.normal(0, 0.002, 10)]
    gappy[1] = gappy[4] = gappy[7] = None
    finding = score_signal(_latency("rare", gappy, [None, 0.9, 0.95]), T0 + 600, THR)
    assert finding is not None and finding.pinned
    full = [float(v) for v in 0.02 + rng.normal(0, 0.002, 10)]
    finding = score_signal(_latency("busy", full, [0.9, 0.95, 1.0]), T0 + 600, THR)
    assert finding is not None and not finding.pinned


def test_a_callee_whose_callers_wait_on_it_is_not_doubted_for_its_flat_latency() -> None:
    # A delay on cart's network path: front and checkout wait, cart's own serving latency
    # (measured) stays flat. That flatness is what a network delay looks like, not innocence.
    measured = frozenset({SignalKind.LATENCY, SignalKind.RESOURCE})
    ranked = rank_services(
        [_wait("front"), _wait("checkout")],  # type: ignore[list-item]
        [],
        _shop(),
        THR,
        60,
        coverage={name: measured for name in ("front", "checkout", "cart", "ads", "mail")},
        waiters=frozenset({"front", "checkout", "reco"}),
    )
    assert ranked[0].service == "cart"
    assert not any("stayed normal" in r for r in ranked[0].reasons)


def test_a_deviation_in_the_last_sample_weighs_half() -> None:
    from agent.engine.service_score import metric_weight

    settled = metric("db", "cpu_usage", 12.0, onset=T0, end=T0 + 600)
    unconfirmed = metric("db", "cpu_usage", 12.0, onset=T0 + 600, end=T0 + 600)
    assert unconfirmed.at_data_end and not settled.at_data_end
    assert metric_weight(unconfirmed) == pytest.approx(0.5 * metric_weight(settled))


def _boutique() -> Topology:
    edges = [("front", "catalog"), ("front", "currency"), ("checkout", "catalog")]
    edges += [("checkout", "currency"), ("reco", "catalog")]
    return Topology(
        services=["front", "checkout", "reco", "catalog", "currency"],
        edges=[Edge(caller=a, callee=b) for a, b in edges],
    )


def _slow_currency(at: float) -> list[object]:
    """front and checkout wait hard, reco (catalog's other caller) a little; currency's own
    serving latency rose at ``at``; catalog's traffic fell (its callers stuck elsewhere)."""
    serving = metric("currency", "server_latency_p99", 50.0, onset=at, kind=SignalKind.LATENCY)
    fell = metric("catalog", "requests_rate", 15.0, direction=-1, kind=SignalKind.TRAFFIC)
    return [_wait("front", 50.0), _wait("checkout", 50.0), _wait("reco", 20.0), serving, fell]


def _waits_on(findings: list[object], topology: Topology | None = None) -> dict[str, float]:
    from agent.engine.callgraph import call_graph
    from agent.engine.waits import wait_blame

    by_service: dict[str, ServiceScore] = {}
    for f in findings:
        by_service.setdefault(f.service, ServiceScore(f.service)).metrics.append(f)  # type: ignore[attr-defined]
    graph = call_graph(topology or _boutique(), [])
    waits = wait_blame(by_service, graph, {"front", "checkout", "reco"}, THR)
    return {callee: w.strength for callee, w in waits.items()}


def test_a_callee_slow_itself_explains_its_callers_wait_over_a_fine_sibling() -> None:
    # catalog is waited on by three callers, currency by two; but currency's own serving
    # latency rose as the callers began to wait, which explains their wait by itself.
    ranked = rank_services(
        _slow_currency(T0),  # type: ignore[arg-type]
        [],
        _boutique(),
        THR,
        60,
        waiters=frozenset({"front", "checkout", "reco"}),
    )
    assert ranked[0].service == "currency"
    explained = _waits_on(_slow_currency(T0))
    unexplained = _waits_on(_slow_currency(T0 + 120))
    assert explained["catalog"] < unexplained["catalog"]
    assert explained["currency"] == pytest.approx(unexplained["currency"])


def test_a_callee_that_got_slow_after_the_wait_began_does_not_explain_it() -> None:
    # Its rise came two minutes into the callers' wait: it cannot be why they began to wait.
    late = _waits_on(_slow_currency(T0 + 120))
    none = _waits_on([f for f in _slow_currency(T0) if f.service != "currency"])  # type: ignore[attr-defined]
    assert late["catalog"] == pytest.approx(none["catalog"])


def test_a_callee_passes_a_wait_on_only_when_its_own_wait_is_confirmed() -> None:
    # reco waits on catalog through the incident: it is likelier a victim of catalog, and
    # front's wait on it counts half. A wait of reco's that only began in the last sample
    # is unconfirmed: front's wait counts in full against reco, as if reco did not wait.
    steady = _wait("reco", 20.0)
    last = metric("reco", "client_latency_p99", 20.0, onset=T0 + 600, end=T0 + 600)
    assert last.at_data_end
    shop = _boutique()
    shop = shop.model_copy(update={"edges": [*shop.edges, Edge(caller="front", callee="reco")]})
    front = [_wait("front", 50.0)]
    passing = _waits_on([*front, steady], shop)["reco"]
    glitch = _waits_on([*front, last], shop)["reco"]
    alone = _waits_on(front, shop)["reco"]
    assert passing < glitch == pytest.approx(alone)
