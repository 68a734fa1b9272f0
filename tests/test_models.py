"""The input models a snapshot is made of, and the Alertmanager payload model.

Each invalid case asserts the field the error points at, since the loader turns these
errors into the one-line ``file: field: message`` a person converting data has to act on.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from agent.models import (
    Change,
    Edge,
    FaultType,
    GroundTruth,
    LogRecord,
    Signal,
    SignalKind,
    Topology,
    Window,
)
from connectors.alertmanager import AlertmanagerWebhook

T0 = 1715680800.0  # 2024-05-14T10:00:00Z
START = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)


def signal(**changes: Any) -> Signal:
    data: dict[str, Any] = {
        "service": "cartservice",
        "name": "cpu",
        "timestamps": [T0, T0 + 60, T0 + 120],
        "values": [0.2, 0.3, 0.4],
    }
    return Signal.model_validate({**data, **changes})


def first_error(exc: pytest.ExceptionInfo[ValidationError]) -> tuple[str, str]:
    err = exc.value.errors()[0]
    return ".".join(str(p) for p in err["loc"]), err["msg"]


# --- Signal -------------------------------------------------------------------------------


def test_signal_minimal_fields_take_documented_defaults() -> None:
    s = signal()
    assert (s.kind, s.unit, s.pod, s.resolution_s, s.labels, s.origin, s.link) == (
        None,
        "",
        None,
        None,
        {},
        "",
        None,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([1.0, None, 3.0], [1.0, None, 3.0]),
        ([math.nan, 2.0, 3.0], [None, 2.0, 3.0]),
        ([1.0, math.inf, -math.inf], [1.0, None, None]),
    ],
)
def test_signal_missing_and_non_finite_points_become_none(
    raw: list[float | None], expected: list[float | None]
) -> None:
    assert signal(values=raw).values == expected


def test_signal_points_are_the_present_samples_within_the_bounds() -> None:
    s = signal(timestamps=[T0, T0 + 60, T0 + 120], values=[1.0, math.nan, 3.0])
    assert s.points() == [(T0, 1.0), (T0 + 120, 3.0)]
    assert s.points(T0 + 60) == [(T0 + 120, 3.0)]
    assert s.points(T0, T0 + 60) == [(T0, 1.0)]
    assert s.points(T0 + 121) == []


def test_signal_lengths_must_match() -> None:
    with pytest.raises(ValidationError) as exc:
        signal(values=[1.0, 2.0])
    assert "timestamps has 3 points but values has 2" in first_error(exc)[1]


@pytest.mark.parametrize("stamps", [[T0, T0, T0 + 60], [T0, T0 + 120, T0 + 60]])
def test_signal_timestamps_must_strictly_increase(stamps: list[float]) -> None:
    with pytest.raises(ValidationError) as exc:
        signal(timestamps=stamps)
    assert "strictly increasing" in first_error(exc)[1]


@pytest.mark.parametrize("bad", [T0 * 1000, math.nan, math.inf])
def test_signal_timestamps_must_be_finite_unix_seconds(bad: float) -> None:
    with pytest.raises(ValidationError) as exc:
        signal(timestamps=[T0, T0 + 60, bad])
    assert "finite Unix seconds" in first_error(exc)[1]


def test_signal_accepts_any_resolution_and_irregular_spacing() -> None:
    one_second = signal(timestamps=[T0, T0 + 1, T0 + 2], resolution_s=1)
    irregular = signal(timestamps=[T0, T0 + 15, T0 + 75.5])
    assert one_second.resolution_s == 1.0
    assert irregular.timestamps == [T0, T0 + 15, T0 + 75.5]


def test_signal_resolution_must_be_positive() -> None:
    with pytest.raises(ValidationError) as exc:
        signal(resolution_s=0)
    assert first_error(exc)[0] == "resolution_s"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"color": "red"}, "color"),
        ({"kind": "bogus"}, "kind"),
        ({"service": ""}, "service"),
        ({"name": ""}, "name"),
        ({"labels": {"status": 500}}, "labels.status"),
        ({"timestamps": ["2024-05-14T10:00:00Z", T0 + 60, T0 + 120]}, "timestamps.0"),
    ],
)
def test_signal_rejects_bad_fields_naming_them(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        signal(**changes)
    assert first_error(exc)[0] == field


def test_signal_kinds_are_the_documented_seven() -> None:
    assert [k.value for k in SignalKind] == [
        "resource",
        "latency",
        "errors",
        "traffic",
        "saturation",
        "change",
        "other",
    ]


def test_series_id_names_service_pod_metric_and_sorted_labels() -> None:
    s = signal(pod="cartservice-5d8f7c9b6-x2k4q", labels={"route": "/cart", "code": "500"})
    assert s.series_id == "cartservice/cartservice-5d8f7c9b6-x2k4q:cpu{code=500,route=/cart}"
    assert signal().series_id == "cartservice:cpu"


# --- LogRecord ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("info", "INFO"),
        (" warning ", "WARN"),
        ("Err", "ERROR"),
        ("fatal", "CRITICAL"),
        ("crit", "CRITICAL"),
        ("debug", "DEBUG"),
        ("", "INFO"),
    ],
)
def test_log_level_is_normalised(given: str, stored: str) -> None:
    record = LogRecord(timestamp=START, service="frontend", level=given, message="m")
    assert record.level == stored


@pytest.mark.parametrize(
    "when",
    [
        "2024-05-14T10:00:00Z",
        "2024-05-14T12:00:00+02:00",
        "2024-05-14 10:00:00",  # no offset: UTC
        datetime(2024, 5, 14, 10, 0),  # naive: UTC
        datetime(2024, 5, 14, 5, 0, tzinfo=timezone(timedelta(hours=-5))),
        T0,  # epoch seconds
        T0 * 1000,  # epoch milliseconds
        "1715680800",
    ],
)
def test_log_timestamps_in_every_accepted_form_end_up_utc(when: Any) -> None:
    record = LogRecord(timestamp=when, service="frontend", message="m")
    assert record.timestamp == START
    assert record.timestamp.utcoffset() == timedelta(0)


def test_log_timestamp_in_nanoseconds_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        LogRecord(timestamp=int(T0) * 10**9, service="frontend", message="m")
    assert first_error(exc)[0] == "timestamp"


@pytest.mark.parametrize("missing", ["timestamp", "service", "message"])
def test_log_record_requires_time_service_and_message(missing: str) -> None:
    data = {"timestamp": T0, "service": "frontend", "message": "m"}
    del data[missing]
    with pytest.raises(ValidationError) as exc:
        LogRecord.model_validate(data)
    assert first_error(exc) == (missing, "Field required")


def test_log_record_rejects_unknown_keys_but_keeps_fields() -> None:
    with pytest.raises(ValidationError) as exc:
        LogRecord.model_validate({"timestamp": T0, "service": "a", "message": "m", "host": "n1"})
    assert first_error(exc)[0] == "host"
    kept = LogRecord(timestamp=T0, service="a", message="m", fields={"host": "n1", "n": None})
    assert kept.fields == {"host": "n1", "n": None}


# --- Window, GroundTruth, Topology ----------------------------------------------------------


def test_window_normalises_to_utc() -> None:
    window = Window(
        start=datetime(2024, 5, 14, 10, 0),
        incident_start="2024-05-14T12:10:00+02:00",
        end=T0 + 1800,
    )
    assert window.start == START
    assert window.incident_start == START + timedelta(minutes=10)
    assert window.end.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "incident", "end"),
    [
        (0, 0, 30),  # incident_start == start
        (0, 30, 30),  # incident_start == end
        (0, 40, 30),  # after end
        (10, 5, 30),  # before start
        (30, 20, 10),  # reversed
    ],
)
def test_window_needs_start_before_incident_before_end(start: int, incident: int, end: int) -> None:
    minute = timedelta(minutes=1)
    with pytest.raises(ValidationError) as exc:
        Window(
            start=START + start * minute,
            incident_start=START + incident * minute,
            end=START + end * minute,
        )
    assert "start < incident_start < end" in first_error(exc)[1]


def test_ground_truth_fault_types_are_a_closed_set() -> None:
    truth = GroundTruth(service="cartservice", fault_type="memory_leak")
    assert truth.fault_type is FaultType.MEMORY_LEAK
    with pytest.raises(ValidationError) as exc:
        GroundTruth(service="cartservice", fault_type="gremlins")
    assert first_error(exc)[0] == "fault_type"


def test_ground_truth_onset_is_utc() -> None:
    naive = GroundTruth(service="a", fault_type="unknown", onset=datetime(2024, 5, 14, 10, 0))
    epoch = GroundTruth(service="a", fault_type="unknown", onset=T0)
    assert naive.onset == epoch.onset == START
    assert naive.onset is not None and naive.onset.tzinfo is UTC


def test_topology_callers_and_callees() -> None:
    topo = Topology(
        services=["frontend", "cartservice", "redis"],
        edges=[
            Edge(caller="frontend", callee="cartservice"),
            Edge(caller="cartservice", callee="redis"),
        ],
    )
    assert topo.callees("cartservice") == ["redis"]
    assert topo.callers("cartservice") == ["frontend"]
    assert topo.callers("frontend") == []
    with pytest.raises(ValidationError) as exc:
        Topology.model_validate({"edges": [{"from": "a", "to": "b"}]})
    assert first_error(exc)[0] == "edges.0.caller"


# --- Change ---------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["shop", "prod-eu-1", "a", "0", "x" * 63, None])
def test_change_namespace_takes_any_kubernetes_namespace(namespace: str | None) -> None:
    change = Change(service="checkout", at=START, namespace=namespace)
    assert change.namespace == namespace


@pytest.mark.parametrize(
    ("namespace", "why"),
    [
        ("Shop", "not a Kubernetes namespace"),
        ("shop_eu", "not a Kubernetes namespace"),
        ("-shop", "not a Kubernetes namespace"),
        ("shop-", "not a Kubernetes namespace"),
        ("shop.eu", "not a Kubernetes namespace"),
        ("shop\n", "not a Kubernetes namespace"),
        ("", "not a Kubernetes namespace"),
        ("x" * 64, "at most 63 characters, not 64"),
    ],
)
def test_change_namespace_must_be_a_dns_label_naming_the_field(namespace: str, why: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Change(service="checkout", at=START, namespace=namespace)
    field, message = first_error(exc)
    assert field == "namespace"
    assert why in message


# --- Alertmanager webhook v4 ----------------------------------------------------------------


def payload(**changes: Any) -> dict[str, Any]:
    def alert(name: str, service: str, starts: str, **labels: str) -> dict[str, Any]:
        return {
            "status": "firing",
            "labels": {"alertname": name, **({"service": service} if service else {}), **labels},
            "annotations": {"summary": f"{name} on {service}"},
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": f"fp-{name}",
        }

    data = {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "rca-agent",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            alert("HighLatency", "frontend", "2024-05-14T10:23:00Z"),
            alert("HighLatency", "", "2024-05-14T12:21:00+02:00", job="checkout"),
            alert("HighLatency", "frontend", "2024-05-14T10:25:00Z"),
        ],
    }
    return {**data, **changes}


def test_webhook_reads_alertmanager_payload() -> None:
    hook = AlertmanagerWebhook.model_validate(payload())
    assert hook.alert_name == "HighLatency"
    assert hook.starts_at == START + timedelta(minutes=21)  # earliest, offset converted
    assert hook.services() == ["frontend", "checkout"]
    assert hook.alerts[0].endsAt == datetime(1, 1, 1, tzinfo=UTC)


def test_webhook_alert_name_falls_back_to_first_alert() -> None:
    hook = AlertmanagerWebhook.model_validate(payload(commonLabels={}))
    assert hook.alert_name == "HighLatency"


def test_webhook_keeps_fields_added_by_newer_alertmanager() -> None:
    hook = AlertmanagerWebhook.model_validate(payload(someNewField={"x": 1}))
    assert hook.model_dump()["someNewField"] == {"x": 1}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"version": "3"}, "version"),
        ({"alerts": []}, "alerts"),
        ({"status": "pending"}, "status"),
        ({"groupKey": None}, "groupKey"),
    ],
)
def test_webhook_rejects_other_shapes(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        AlertmanagerWebhook.model_validate(payload(**changes))
    assert first_error(exc)[0] == field


def test_webhook_alert_needs_starts_at() -> None:
    data = payload()
    del data["alerts"][1]["startsAt"]
    with pytest.raises(ValidationError) as exc:
        AlertmanagerWebhook.model_validate(data)
    assert first_error(exc) == ("alerts.1.startsAt", "Field required")
