"""The signal catalog: the built-in default, custom YAML files, and errors that name the spot."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.models import SignalKind
from connectors.catalog import load_catalog
from connectors.promplan import QueryPlan

START = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)
END = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


def test_the_default_catalog_covers_what_the_issue_lists() -> None:
    catalog = load_catalog()
    names = {s.name for s in catalog.signals}
    kinds = {s.kind for s in catalog.signals}
    assert {
        "container_cpu_usage_seconds:rate",
        "container_cpu_cfs_throttled:ratio",
        "container_memory_working_set_bytes",
        "kube_pod_container_status_restarts_total",
        "kube_pod_container_oom_killed",
        "kube_deployment_status_observed_generation",
        "http_requests:rate",
        "http_requests_5xx:ratio",
        "http_request_duration_seconds:p99",
        "http_server_request_duration_seconds:p99",
        "http_server_request_5xx:ratio",
    } <= names
    assert kinds == set(SignalKind)  # every kind, so causes and symptoms both show up
    assert {t.name for t in catalog.topology} == {"otel_service_graph", "istio_requests"}


def test_every_default_query_renders_without_leftover_placeholders() -> None:
    catalog = load_catalog()
    plan = QueryPlan.build(START, END, 15, 1100, "service", 'namespace="shop"', ["a", "b"])
    for entry in catalog.signals:
        query = plan.query(entry)
        assert "$" not in query, entry.name
        assert 'namespace="shop"' in query
        assert query.count("(") == query.count(")"), entry.name
    for edges in catalog.topology:
        assert "$" not in plan.topology_query(edges)


def test_services_are_matched_in_promql_only_where_one_label_names_them() -> None:
    catalog = {s.name: s for s in load_catalog().signals}
    plan = QueryPlan.build(START, END, 15, 1100, "service", "", ["cart", 'we"ird'])
    assert 'service=~"cart|we\\"ird"' in plan.query(catalog["http_requests:rate"])
    cpu = plan.query(catalog["container_cpu_usage_seconds:rate"])
    assert "cart" not in cpu and "by (container, service, pod)" in cpu


def test_the_step_grows_to_cap_points_and_counters_switch_to_rate() -> None:
    fine = QueryPlan.build(START, END, 15, 1100, "service", "")
    coarse = QueryPlan.build(START, END, 15, 100, "service", "")
    assert (fine.step_s, fine.rate_function, fine.rate_window_s) == (15, "irate", 45)
    assert coarse.step_s > 15 and coarse.rate_function == "rate"
    assert (coarse.end - coarse.start).total_seconds() / coarse.step_s + 1 <= 100


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


def test_a_custom_catalog_replaces_the_default(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "signals:\n"
        "  - name: queue_depth\n"
        "    kind: saturation\n"
        "    query: max by ($by) (job:queue_depth:max{$selector})\n",
    )
    catalog = load_catalog(path)
    assert [s.name for s in catalog.signals] == ["queue_depth"]
    assert catalog.probe == "up" and catalog.topology == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("signals: [", "is not valid YAML"),
        ("signals: []", "signals: List should have at least 1 item"),
        (
            "signals:\n  - {name: a, kind: slow, query: up}",
            "signals.0.kind: Input should be 'resource', 'latency'",
        ),
        (
            "signals:\n  - {name: a, kind: other, query: 'up{$selecter}'}",
            "signals.0.query: unknown placeholder $selecter",
        ),
        (
            "signals:\n  - {name: a, kind: other, query: up, service_labels: [app-name]}",
            "signals.0.service_labels: 'app-name' is not a valid Prometheus label name",
        ),
        (
            "signals:\n  - {name: a, kind: other, query: up}\n"
            "  - {name: a, kind: other, query: up}",
            "signals: signal name 'a' appears twice",
        ),
        ("signals:\n  - {name: a, kind: other, query: up, extra: 1}", "signals.0.extra: Extra"),
    ],
)
def test_catalog_errors_name_the_file_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"signal catalog {path}")
    assert message in str(caught.value)


def test_a_missing_catalog_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"signal catalog .*nope\.yaml does not exist"):
        load_catalog(tmp_path / "nope.yaml")
