"""Ranking rules about time: what dates a service's trouble, which dependency can explain a
caller, and when data that stops is an outage rather than a scrape gap."""

from __future__ import annotations

from dataclasses import replace

from findings_support import T0, THR, metric

from agent.engine.detect.series import SeriesFinding
from agent.engine.rank import rank_services
from agent.engine.service_score import ServiceScore
from agent.models import Edge, FaultType, Signal, SignalKind, Topology


def _graph(*edges: tuple[str, str]) -> Topology:
    names = sorted({n for e in edges for n in e})
    return Topology(services=names, edges=[Edge(caller=a, callee=b) for a, b in edges])


def _by_name(ranked: list[ServiceScore]) -> dict[str, ServiceScore]:
    return {s.service: s for s in ranked}


def test_a_service_is_dated_by_its_clear_findings_not_by_an_early_blip() -> None:
    ranked = rank_services(
        [metric("api", "db_pool_pending", 4.5, onset=T0 - 300), metric("api", "errors", 40)],
        [],
        None,
        THR,
        15,
    )
    assert ranked[0].onset == T0


def test_the_alert_is_dated_by_its_clear_symptoms() -> None:
    findings = [
        metric("front", "latency_p99", 4.2, onset=T0 - 900),
        metric("front", "errors", 40),
        metric("db", "cpu", 30, onset=T0 - 30),
    ]
    db = _by_name(rank_services(findings, [], None, THR, 15, alerted=("front",)))["db"]
    assert not any("before the incident" in r for r in db.reasons)
    assert db.reasons == ["anomalies began just before or as the incident became visible"]


def test_a_dependency_whose_trouble_starts_well_after_its_caller_explains_nothing() -> None:
    topology = _graph(("api", "db"))

    def api_reasons(db_onset: float) -> list[str]:
        findings = [metric("api", "latency_p99", 30), metric("db", "cpu", 30, onset=db_onset)]
        return _by_name(rank_services(findings, [], topology, THR, 1))["api"].reasons

    explained = "its dependency db is anomalous too, from no later"
    assert explained in api_reasons(T0 + 2)  # within a few 1 s samples: may be the cause
    assert explained not in api_reasons(T0 + 60)  # a minute later: a consequence at most


def test_a_callers_throttling_after_its_dependency_failed_is_not_its_own_cause() -> None:
    topology = _graph(("api", "db"))

    def api_score(throttled_at: float) -> float:
        findings = [
            metric("api", "errors", 40, onset=T0 + 60),
            metric("api", "cpu_throttled_ratio", 39, onset=throttled_at),
            metric("db", "errors", 30, onset=T0),
            metric("db", "disk_used_ratio", 30, onset=T0),
        ]
        return _by_name(rank_services(findings, [], topology, THR, 60))["api"].score

    # Throttled before the database failed: maybe its own trouble. Long after: piled-up work.
    assert api_score(T0 + 1200) < 0.7 * api_score(T0 - 60)


def _gap(service: str, name: str, onset: float = T0) -> object:
    return metric(service, name, 25, onset=onset, direction=0, kind=SignalKind.TRAFFIC, end=T0 + 60)


def test_data_that_stops_while_callers_fail_is_an_outage() -> None:
    findings = [
        _gap("redis", "redis_commands_total"),
        _gap("redis", "redis_memory_used_bytes"),
        metric("cart", "errors", 20, onset=T0 + 15),
    ]
    ranked = rank_services(findings, [], _graph(("cart", "redis")), THR, 15)
    assert ranked[0].service == "redis"
    assert ranked[0].fault_type is FaultType.DEPENDENCY_OUTAGE


def test_a_dependency_that_went_down_explains_only_failures_that_began_as_it_did() -> None:
    topology = _graph(("ledger", "gateway"))
    measured = {"gateway": frozenset({SignalKind.ERRORS, SignalKind.LATENCY})}

    def ledger_reasons(down_at: float) -> list[str]:
        findings = [
            metric("ledger", "errors", 30),
            _gap("gateway", "gateway_requests_total", onset=down_at),
            _gap("gateway", "gateway_memory_bytes", onset=down_at),
        ]
        ranked = rank_services(findings, [], topology, THR, 60, coverage=measured)
        return _by_name(ranked)["ledger"].reasons

    explained = "its dependency gateway is anomalous too, from no later"
    assert explained in ledger_reasons(T0)  # down as the errors began: they are its
    # Missing from the next scrape: it died between the two, as the errors began.
    assert explained in ledger_reasons(T0 + 60)
    # Its data stopped two samples after the errors began: its calls were still answered
    # when they began, whatever the onsets' usual three samples of slack allow.
    assert explained not in ledger_reasons(T0 + 120)
    # Down five minutes before: its callers would have failed from the next call.
    assert explained not in ledger_reasons(T0 - 300)


def test_a_gap_that_no_caller_feels_is_doubted() -> None:
    findings = [
        _gap("redis", "redis_commands_total"),
        _gap("redis", "redis_memory_used_bytes"),
        metric("cart", "errors", 20, onset=T0 + 900),  # long after the data came back
    ]
    redis = _by_name(rank_services(findings, [], _graph(("cart", "redis")), THR, 15))["redis"]
    assert "its data stopped, but no caller failed meanwhile (a scrape gap?)" in redis.reasons
    assert all(f.score == THR for f in redis.metrics)


def test_a_dependency_slow_since_long_before_does_not_explain_a_callers_new_slowness() -> None:
    topology = _graph(("api", "db"))

    def api_reasons(db_onset: float) -> list[str]:
        findings = [
            metric("api", "latency_p99", 40),
            metric("db", "latency_p99", 30, onset=db_onset),
        ]
        measured = {"api": frozenset({SignalKind.LATENCY}), "db": frozenset({SignalKind.LATENCY})}
        ranked = rank_services(findings, [], topology, THR, 10, coverage=measured)
        return _by_name(ranked)["api"].reasons

    explained = "its dependency db is anomalous too, from no later"
    assert explained in api_reasons(T0 - 20)  # the callee slowed just before: it explains
    # Slow for five minutes before the caller noticed: the caller's new slowness is its own.
    assert explained not in api_reasons(T0 - 300)


def _creeping_errors(service: str, jump_at: float) -> SeriesFinding:
    """Errors a little up from T0 - 240 s (the detector's onset), a step to 15% at
    ``jump_at``: a disk filling up fails a few writes first, then most of them."""
    stamps = [T0 - 600 + 60 * i for i in range(21)]
    values = [0.15 if t >= jump_at else 0.008 if t >= T0 - 240 else 0.004 for t in stamps]
    signal = Signal(service=service, name="errors", timestamps=stamps, values=values)
    return replace(
        metric(service, "errors", 50, onset=T0 - 240, base=0.004),
        signal=signal,
        level=0.15,
    )


def test_a_dependencys_errors_that_crept_up_then_jumped_as_its_caller_failed_explain_it() -> None:
    topology = _graph(("cart", "redis"))

    def cart_reasons(jump_at: float) -> list[str]:
        findings = [metric("cart", "errors", 50), _creeping_errors("redis", jump_at)]
        measured = {"cart": frozenset({SignalKind.ERRORS}), "redis": frozenset({SignalKind.ERRORS})}
        ranked = rank_services(findings, [], topology, THR, 60, coverage=measured)
        return _by_name(ranked)["cart"].reasons

    explained = "its dependency redis is anomalous too, from no later"
    # Its errors jumped a minute before the caller's: what the caller felt, though the
    # first flicker came four minutes before.
    assert explained in cart_reasons(T0 - 60)
    # Failing in full four minutes before the caller noticed: the caller's failures are new.
    assert explained not in cart_reasons(T0 - 240)


def test_the_incident_was_visible_by_the_time_the_alert_fired() -> None:
    # The alerted service's series only catch up 40 minutes later; the alert fired at T0.
    findings = [
        metric("api", "errors", 6, onset=T0 + 2400),
        metric("db", "disk_used_ratio", 40, onset=T0 - 60),
    ]
    late = _by_name(rank_services(findings, [], None, THR, 15, alerted=("api",)))["db"]
    assert any("before the incident, maybe unrelated" in r for r in late.reasons)
    fired = rank_services(findings, [], None, THR, 15, alerted=("api",), fired_at=T0)
    assert _by_name(fired)["db"].reasons == [
        "anomalies began just before or as the incident became visible"
    ]
    assert _by_name(fired)["db"].score > late.score


def test_a_restart_counter_that_resets_with_a_rollout_is_not_a_crash() -> None:
    measured = {"auth": frozenset({SignalKind.LATENCY, SignalKind.ERRORS})}

    def auth(restarts_direction: int) -> ServiceScore:
        findings = [
            metric("auth", "deployment_version", 40, kind=SignalKind.CHANGE),
            metric("auth", "container_restarts_total", 15, direction=restarts_direction),
        ]
        return rank_services(findings, [], None, THR, 15, coverage=measured)[0]

    # A new pod counts from zero again: an uneventful rollout whose service stayed healthy.
    assert "its own latency and errors stayed normal" in auth(-1).reasons
    # Restarts going up are a crash loop: the deploy hurt the service.
    assert "its own latency and errors stayed normal" not in auth(+1).reasons
