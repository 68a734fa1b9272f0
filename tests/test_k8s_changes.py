"""Rollouts from kube-state-metrics (connectors/k8s_changes.py) against a real Prometheus.

The TSDB is backfilled with promtool from kube-state-metrics-shaped series of one hour in
namespace ``shop`` (30 s scrapes):

- ``checkout`` rolls out image 1.4.2 -> 1.4.3 at 10:20:10 (a new ReplicaSet, pods started
  10:20:10 and 10:21:05, the old ones gone at 10:22); an istio-proxy sidecar rides along;
- ``cart`` scales from 2 to 3 replicas at 10:30 (a new pod of the same ReplicaSet);
- ``payment`` rolls out a config change at 10:40:05 (a new ReplicaSet, the same image).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kube_state_support import END_S, SCRAPE, T0, Pod, kube_state_series, line
from prometheus_server import PrometheusServer, require_binaries, start_prometheus

from agent.changes import pod_versions
from agent.cli import cli
from agent.models import ChangeKind
from agent.snapshot import load_snapshot, write_snapshot
from connectors.collect import Scope, collect_live
from connectors.k8s_changes import VERSION_SERIES, KubeChanges, KubeSeries, read_changes
from connectors.prometheus import PrometheusSource
from connectors.promplan import QueryPlan
from connectors.promtool import backfill
from connectors.settings import CollectSettings, PrometheusSettings

SIDECAR = "docker.io/istio/proxyv2:1.20.0"
PODS = [
    Pod("checkout", "checkout-5d8f7c9b6", "checkout-5d8f7c9b6-b2c4d", "1.4.2", -600, 1320),
    Pod("checkout", "checkout-5d8f7c9b6", "checkout-5d8f7c9b6-q2k4z", "1.4.2", -600, 1320),
    Pod("checkout", "checkout-7d9f8c6b5", "checkout-7d9f8c6b5-x2k4q", "1.4.3", 1210),
    Pod("checkout", "checkout-7d9f8c6b5", "checkout-7d9f8c6b5-z9z9z", "1.4.3", 1265),
    Pod("cart", "cart-6b7c9d8f4f", "cart-6b7c9d8f4f-x2k4q", "3.1.0", -900),
    Pod("cart", "cart-6b7c9d8f4f", "cart-6b7c9d8f4f-bbbbb", "3.1.0", -900),
    Pod("cart", "cart-6b7c9d8f4f", "cart-6b7c9d8f4f-hhhhh", "3.1.0", 1800),
    Pod("payment", "payment-5c7d8b9f6", "payment-5c7d8b9f6-ddddd", "2.0.0", -900, 2520),
    Pod("payment", "payment-84d5c9f7b2", "payment-84d5c9f7b2-fffff", "2.0.0", 2405),
]
REPLICAS = {"checkout": [(0, 2)], "cart": [(0, 2), (1800, 3)], "payment": [(0, 1)]}
REPLICASET_CREATED = {"checkout-7d9f8c6b5": 1200, "payment-84d5c9f7b2": 2400}


def kube_state_metrics() -> list[str]:
    """The OpenMetrics text of the hour: the pods' series (from each pod's start, before T0
    too, with the sidecar), then the Deployments' replicas."""
    out = kube_state_series(PODS, REPLICASET_CREATED, "shop", sidecar=SIDECAR)
    out.append("# TYPE kube_deployment_spec_replicas gauge")
    for deployment, steps in REPLICAS.items():
        for t in range(0, END_S + 1, SCRAPE):
            value = [v for since, v in steps if t >= since][-1]
            labels = {"namespace": "shop", "deployment": deployment}
            out.append(line("kube_deployment_spec_replicas", labels, value, t))
    return [*out, "# EOF"]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_binaries("promtool", "prometheus")
    root = tmp_path_factory.mktemp("kube-rollout")
    text = root / "kube.om"
    text.write_text("\n".join(kube_state_metrics()) + "\n")
    server = start_prometheus(backfill(text, root / "tsdb"), root / "server")
    yield server
    server.stop()


def _source(server: PrometheusServer) -> PrometheusSource:
    return PrometheusSource(server.url, PrometheusSettings())


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.integration
def test_the_rollout_scale_and_config_push_are_found(prometheus: PrometheusServer) -> None:
    fetch = KubeChanges(_source(prometheus)).fetch(T0, at(END_S), {"namespace": "shop"})
    assert fetch.failures == []
    found = [(c.service, c.kind, c.at, c.from_version, c.to_version) for c in fetch.changes]
    assert found == [
        ("checkout", ChangeKind.DEPLOY, at(1210), "1.4.2", "1.4.3"),  # the first new pod
        ("cart", ChangeKind.SCALE, at(1800), "2", "3"),  # a new pod, not a new version
        ("payment", ChangeKind.DEPLOY, at(2405), "5c7d8b9f6", "84d5c9f7b2"),  # same image
    ]
    assert {c.source for c in fetch.changes} == {"prometheus"}
    assert {c.namespace for c in fetch.changes} == {"shop"}  # the series' namespace label
    assert all(c.link and "kube_pod_owner" in c.link for c in fetch.changes)
    versions = {(s.pod, s.labels["version"]) for s in fetch.signals}
    assert ("checkout-7d9f8c6b5-x2k4q", "1.4.3") in versions
    assert ("checkout-5d8f7c9b6-b2c4d", "1.4.2") in versions  # the sidecar's tag is not it
    assert ("payment-84d5c9f7b2-fffff", "84d5c9f7b2") in versions
    assert {s.name for s in fetch.signals} == {VERSION_SERIES}


@pytest.mark.integration
def test_a_healthy_window_without_rollouts_finds_none(prometheus: PrometheusServer) -> None:
    fetch = KubeChanges(_source(prometheus)).fetch(T0, at(900), {"namespace": "shop"})
    assert fetch.failures == [] and fetch.changes == []
    assert len({s.pod for s in fetch.signals}) == 5  # the pods are there, they just ran
    other = KubeChanges(_source(prometheus)).fetch(T0, at(END_S), {"namespace": "elsewhere"})
    assert other.changes == [] and other.signals == []


@pytest.mark.integration
def test_live_collection_carries_changes_and_pod_versions(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    source = _source(prometheus)
    scope = Scope((), at(1500), at(END_S))
    options = CollectSettings(baseline_minutes=25)
    collected = collect_live(scope, source, None, options, KubeChanges(source))
    snapshot = collected.snapshot
    assert collected.failures == []
    deploys = [(c.service, c.to_version) for c in snapshot.changes if c.kind is ChangeKind.DEPLOY]
    assert deploys == [("checkout", "1.4.3"), ("payment", "84d5c9f7b2")]
    versions = pod_versions(snapshot.signals, snapshot.changes)
    assert versions[("checkout", "checkout-5d8f7c9b6-q2k4z")] == "1.4.2"
    assert versions[("checkout", "checkout-7d9f8c6b5-z9z9z")] == "1.4.3"
    assert {c.namespace for c in snapshot.changes} == {"shop"}
    recorded = load_snapshot(write_snapshot(snapshot, tmp_path / "rec"))
    assert (tmp_path / "rec" / "changes.jsonl").exists()
    assert recorded.changes == snapshot.changes and recorded.meta.version == 2


@pytest.mark.integration
def test_rca_record_writes_the_changes(
    prometheus: PrometheusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alert = tmp_path / "alert.json"
    firing = {
        "status": "firing",
        "labels": {"alertname": "CheckoutErrors", "service": "checkout", "namespace": "shop"},
        "startsAt": at(1500).isoformat(),
    }
    payload = {"version": "4", "groupKey": "g", "status": "firing", "receiver": "r"}
    alert.write_text(json.dumps({**payload, "alerts": [firing]}))
    monkeypatch.setenv("RCA_PROMETHEUS_URL", prometheus.url)
    for name in ("RCA_ELASTICSEARCH_URL", "RCA_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "out"
    args = ["record", "--alert", str(alert), "--out", str(out), "--end", at(END_S).isoformat()]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "changes" in result.output
    lines = [json.loads(x) for x in (out / "changes.jsonl").read_text().splitlines()]
    assert ("checkout", "shop", "1.4.3", "prometheus") in {
        (x["service"], x.get("namespace"), x.get("to_version"), x["source"]) for x in lines
    }


# --- namespaces, without a server ---------------------------------------------------------

PLAN = QueryPlan(T0, at(END_S), SCRAPE, SCRAPE, 4 * SCRAPE, "service", "")


def _series(name: str, labels: dict[str, str], since: int, until: int = END_S) -> dict[str, Any]:
    """One result of a range query, as Prometheus answers it."""
    points = [[T0.timestamp() + t, "1"] for t in range(since, until + 1, SCRAPE)]
    return {"metric": {"__name__": name, **labels}, "values": points}


def _deployment(namespace: str, pods: list[tuple[str, str, int, int]]) -> dict[str, list[Any]]:
    """checkout's ReplicaSets and pods (ReplicaSet hash, pod suffix, start, end) in one
    namespace, each pod's container image tagged by its ReplicaSet."""
    ns = {"namespace": namespace}
    tags = {"5d8f7c9b6": "1.4.2", "7d9f8c6b5": "1.4.3"}
    out: dict[str, list[Any]] = {"replicasets": [], "pods": [], "images": []}
    for rs in sorted({rs for rs, *_ in pods}):
        owner = {**ns, "replicaset": f"checkout-{rs}", "owner_name": "checkout"}
        out["replicasets"].append(_series("kube_replicaset_owner", owner, 0))
    for rs, suffix, start, end in pods:
        pod = {**ns, "pod": f"checkout-{rs}-{suffix}"}
        owner = {**pod, "owner_name": f"checkout-{rs}"}
        out["pods"].append(_series("kube_pod_owner", owner, start, end))
        image = {**pod, "container": "checkout", "image": f"ghcr.io/shop/checkout:{tags[rs]}"}
        out["images"].append(_series("kube_pod_container_info", image, start, end))
    return out


def _both(*namespaces: dict[str, list[Any]]) -> KubeSeries:
    return KubeSeries({k: [x for n in namespaces for x in n[k]] for k in namespaces[0]})


def test_a_deploy_takes_the_namespace_its_new_pods_run_in() -> None:
    prod = _deployment("prod", [("5d8f7c9b6", "b2c4d", 0, END_S)])
    staging = _deployment(
        "staging", [("5d8f7c9b6", "q2k4z", 0, 1320), ("7d9f8c6b5", "x2k4q", 1200, END_S)]
    )
    (change,) = read_changes(_both(prod, staging), PLAN, "http://prometheus").changes
    assert (change.to_version, change.namespace) == ("1.4.3", "staging")


def test_a_deploy_seen_in_two_namespaces_names_none() -> None:
    old, new = ("5d8f7c9b6", "b2c4d", 0, 1320), ("7d9f8c6b5", "x2k4q", 1200, END_S)
    kube = _both(_deployment("prod", [old, new]), _deployment("staging", [old, new]))
    (change,) = read_changes(kube, PLAN, "http://prometheus").changes
    assert change.to_version == "1.4.3" and change.namespace is None  # never a guess
