"""A defective rollout end to end: a real Prometheus, the live path, the Slack double.

The TSDB is backfilled with promtool from one hour of kube-state-metrics-shaped series
(ReplicaSet and pod ownership, container images, pod start times) and per-pod request
counters, namespace ``shop``, 30 s scrapes. Two Deployments roll out in the same minutes:

- ``checkout`` 1.4.2 -> 1.4.3 from 10:30:10 (new pods at 10:30:10 and 10:31:05, the old ones
  gone at 10:34:30 and 10:35:30); a quarter of the new pods' requests answer 500;
- ``cart`` 3.1.0 -> 3.1.1 from 10:30:40 (new pods at 10:30:40 and 10:31:35, the old ones
  gone at 10:35 and 10:36), healthy.

The analysis runs as ``rca`` runs it live: ``collect_live`` with ``PrometheusSource`` (a
catalog keeping the request counters per pod) and ``KubeChanges``, then ``analyze``, then
``publish_incident`` through the real slack-sdk client to the Slack Web API double. The post
must name the suspect change (service, version and namespace), clear the healthy one, and
suggest the rollback in the namespace kube-state-metrics named.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from kube_state_support import SCRAPE, T0, Pod, kube_state_series, line
from prometheus_server import PrometheusServer, require_binaries, start_prometheus
from pydantic import SecretStr
from slack_double import TOKEN, SlackDouble

from agent.engine.pipeline import analyze
from agent.slack.publish import publish_incident
from connectors.alertmanager import AlertmanagerWebhook
from connectors.collect import Scope, collect_live
from connectors.k8s_changes import KubeChanges
from connectors.prometheus import PrometheusSource
from connectors.promtool import backfill
from connectors.settings import CollectSettings, PrometheusSettings
from connectors.slack import SlackPublisher, build_client
from connectors.slack_settings import SlackSettings

pytestmark = pytest.mark.integration
RATE = 20.0  # requests per second per pod

PODS = [
    Pod("checkout", "checkout-5d8f7c9b6", "checkout-5d8f7c9b6-b2c4d", "1.4.2", -600, 2070),
    Pod("checkout", "checkout-5d8f7c9b6", "checkout-5d8f7c9b6-q2k4z", "1.4.2", -600, 2130),
    Pod("checkout", "checkout-7d9f8c6b5", "checkout-7d9f8c6b5-x2k4q", "1.4.3", 1810, failing=0.25),
    Pod("checkout", "checkout-7d9f8c6b5", "checkout-7d9f8c6b5-z9z9z", "1.4.3", 1865, failing=0.25),
    Pod("cart", "cart-6b7c9d8f4f", "cart-6b7c9d8f4f-x2k4q", "3.1.0", -900, 2100),
    Pod("cart", "cart-6b7c9d8f4f", "cart-6b7c9d8f4f-bbbbb", "3.1.0", -900, 2160),
    Pod("cart", "cart-84d5c9f7b2", "cart-84d5c9f7b2-fffff", "3.1.1", 1840),
    Pod("cart", "cart-84d5c9f7b2", "cart-84d5c9f7b2-hhhhh", "3.1.1", 1895),
]
REPLICASET_CREATED = {"checkout-7d9f8c6b5": 1800, "cart-84d5c9f7b2": 1830}
CATALOG = """\
probe: up
signals:
  - name: http_requests:rate
    kind: traffic
    unit: req/s
    per_pod: true
    query: sum by ($by) (rate(http_requests_total{$selector}[$rate_window]))
  - name: http_requests_5xx:ratio
    kind: errors
    unit: ratio
    per_pod: true
    query: >-
      (sum by ($by) (rate(http_requests_total{code=~"5..",$selector}[$rate_window]))
      or sum by ($by) (rate(http_requests_total{$selector}[$rate_window])) * 0)
      / sum by ($by) (rate(http_requests_total{$selector}[$rate_window]))
  - name: container_memory_working_set_bytes
    kind: resource
    unit: bytes
    per_pod: true
    service_labels: [container]
    query: max by ($by) (container_memory_working_set_bytes{container!="",$selector})
"""


def _requests(ns: dict[str, str]) -> list[str]:
    """Per-pod request counters by status code, counting from each pod's start."""
    out = ["# TYPE http_requests counter"]
    for pod in PODS:
        for code, share in (("200", 1 - pod.failing), ("500", pod.failing)):
            labels = {**ns, "service": pod.deployment, "pod": pod.name, "code": code}
            for i, t in enumerate(pod.scrapes(since=0)):
                total = RATE * share * SCRAPE * i
                out.append(line("http_requests_total", labels, total, t))
    return out


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_binaries("promtool", "prometheus")
    root = tmp_path_factory.mktemp("rollout-e2e")
    text = root / "rollout.om"
    ns = {"namespace": "shop"}
    # Nothing before T0: the pods that started earlier have their series from T0 on.
    pods = kube_state_series(PODS, REPLICASET_CREATED, "shop", since=0)
    text.write_text("\n".join([*pods, *_requests(ns), "# EOF"]) + "\n")
    server = start_prometheus(backfill(text, root / "tsdb"), root / "server")
    yield server
    server.stop()


def _alert() -> AlertmanagerWebhook:
    labels = {"alertname": "CheckoutErrors", "service": "checkout", "namespace": "shop"}
    started = (T0 + timedelta(seconds=2280)).isoformat()
    return AlertmanagerWebhook.model_validate(
        {
            "version": "4",
            "groupKey": '{}:{alertname="CheckoutErrors"}',
            "status": "firing",
            "receiver": "rca",
            "groupLabels": {"alertname": "CheckoutErrors"},
            "commonLabels": labels,
            "alerts": [{"status": "firing", "labels": labels, "startsAt": started}],
        }
    )


def test_the_slack_post_names_the_defective_rollout_and_clears_the_healthy_one(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG)
    source = PrometheusSource(prometheus.url, PrometheusSettings(catalog=catalog))
    scope = Scope((), T0 + timedelta(seconds=2100), T0 + timedelta(seconds=3000))
    options = CollectSettings(baseline_minutes=35)
    collected = collect_live(scope, source, None, options, KubeChanges(source))
    assert collected.failures == []
    snapshot = collected.snapshot
    pods = {s.pod for s in snapshot.signals if s.name == "http_requests_5xx:ratio"}
    assert "checkout-7d9f8c6b5-x2k4q" in pods and "cart-84d5c9f7b2-fffff" in pods

    analysis = analyze(snapshot.model_copy(update={"alert": _alert()}))
    verdicts = {
        v.change.service: (v.verdict, v.change.to_version, v.change.namespace)
        for v in analysis.changes
    }
    assert verdicts == {
        "checkout": ("suspect", "1.4.3", "shop"),
        "cart": ("cleared", "3.1.1", "shop"),
    }
    assert analysis.candidates[0].service == "checkout"

    settings = SlackSettings.model_validate(
        {"default_channel": "C0INCIDENTS", "public_url": "https://rca.example.com"}
    )
    with SlackDouble() as slack:
        client = build_client(slack.api_url, SecretStr(TOKEN), settings, sleep=lambda _s: None)
        ref = publish_incident(SlackPublisher(client, settings), analysis, _alert(), None)
        assert ref is not None
        (post,) = slack.calls("chat.postMessage")
    blocks = str(post.params["blocks"])
    assert "Changes in the window" in blocks
    assert "suspect: checkout 1.4.2 → 1.4.3" in blocks
    assert "cleared: cart 3.1.0 → 3.1.1" in blocks
    assert blocks.index("suspect: checkout") < blocks.index("cleared: cart")
    assert "suspect: checkout 1.4.2 → 1.4.3 (deploy at 10:30:10, namespace shop)" in blocks
    # suggested, never run; in the namespace kube-state-metrics named, no placeholder
    assert "`kubectl rollout undo deployment/checkout -n shop`" in blocks
    assert "<namespace>" not in blocks and "&lt;namespace&gt;" not in blocks
    assert "`kubectl rollout undo deployment/checkout -n shop`" in analysis.next_steps[0]
