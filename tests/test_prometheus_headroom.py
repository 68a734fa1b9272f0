"""A pod's CPU as a share of its limit, from a real Prometheus labelled as kube-prometheus-stack
labels it, drives the headroom rule (agent/engine/headroom.py) live.

cAdvisor's series (``job="kubelet"``, ``service="kubelet"``) and kube-state-metrics' limits
(``service="kube-state-metrics"``) share only ``namespace``, ``pod`` and ``container``, and the
sidecar of every pod has no limit, as is common. In namespace ``shop`` over one hour of 30 s
scrapes, from 10:40 on:

- ``cart``'s container climbs from 0.05 to 0.9 of its 1-core limit (pegged there: starved);
- ``station``'s climbs from 0.02 to 0.08 cores of its 2-core limit (busier, under 5 %).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from kube_state_support import END_S, SCRAPE, T0, line
from prometheus_server import PrometheusServer, require_binaries, start_prometheus

from agent.engine.detect.series import score_signals
from agent.engine.headroom import far_below_limit, mark_headroom
from agent.models import Signal
from connectors.prometheus import PrometheusSource
from connectors.promtool import backfill
from connectors.settings import PrometheusSettings

ONSET_S = 2400
LIMITS = {"cart": 1.0, "station": 2.0}  # cores
CORES = {"cart": (0.05, 0.9), "station": (0.02, 0.08)}  # before and after the onset
POD = {"cart": "cart-6b7c9d8f4f-x2k4q", "station": "station-5c7d8b9f6-ddddd"}
SIDECAR_CORES = 0.01


def _cadvisor(out: list[str]) -> None:
    out.append("# TYPE container_cpu_usage_seconds counter")
    for service, (before, after) in CORES.items():
        containers = {service: (before, after), "istio-proxy": (SIDECAR_CORES, SIDECAR_CORES)}
        for container, (low, high) in containers.items():
            labels = {"namespace": "shop", "pod": POD[service], "container": container}
            labels |= {"job": "kubelet", "service": "kubelet"}
            total = 0.0
            for t in range(0, END_S + 1, SCRAPE):
                total += (high if t > ONSET_S else low) * SCRAPE
                out.append(line("container_cpu_usage_seconds_total", labels, total, t))


def _limits(out: list[str]) -> None:
    out.append("# TYPE kube_pod_container_resource_limits gauge")
    for service, cores in LIMITS.items():
        common = {"namespace": "shop", "pod": POD[service], "container": service}
        common |= {"job": "kube-state-metrics", "service": "kube-state-metrics", "node": "n1"}
        for resource, unit, value in (("cpu", "core", cores), ("memory", "byte", 5.36870912e8)):
            labels = {**common, "resource": resource, "unit": unit}
            out += [
                line("kube_pod_container_resource_limits", labels, value, t)
                for t in range(0, END_S + 1, SCRAPE)
            ]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_binaries("promtool", "prometheus")
    root = tmp_path_factory.mktemp("headroom")
    out: list[str] = []
    _cadvisor(out)
    _limits(out)
    text = root / "cpu.om"
    text.write_text("\n".join([*out, "# EOF"]) + "\n")
    server = start_prometheus(backfill(text, root / "tsdb"), root / "server")
    yield server
    server.stop()


def _signals(server: PrometheusServer) -> list[Signal]:
    source = PrometheusSource(server.url, PrometheusSettings())
    start, end = T0 + timedelta(minutes=10), T0 + timedelta(seconds=END_S)
    fetch = source.fetch(start, end, alert_labels={"namespace": "shop"})
    assert fetch.failures == []
    return fetch.signals


@pytest.mark.integration
def test_the_share_of_the_limit_is_cpu_over_the_containers_own_limit(
    prometheus: PrometheusServer,
) -> None:
    shares = {s.service: s for s in _signals(prometheus) if s.name.endswith(":limit_ratio")}
    assert set(shares) == set(LIMITS)  # the sidecar has no limit, so no share
    for service, share in shares.items():
        assert share.pod == POD[service] and share.unit == "ratio"
        before, after = CORES[service]
        first, last = share.values[0], share.values[-1]
        assert first == pytest.approx(before / LIMITS[service], rel=1e-6)
        assert last == pytest.approx(after / LIMITS[service], rel=1e-6)


@pytest.mark.integration
def test_live_cpu_far_below_or_pegged_at_its_limit_is_marked_and_counted_once(
    prometheus: PrometheusServer,
) -> None:
    signals = _signals(prometheus)
    split = (T0 + timedelta(seconds=ONSET_S)).timestamp()
    assert far_below_limit(signals, split) == {("station", POD["station"])}
    found = mark_headroom(score_signals(signals, split, 3.0), signals, split, 3.0)
    rising = {(f.service, f.signal.name): f for f in found if f.direction > 0}
    # Pegged at 90 % of its limit, cart's CPU is read from its share; station's from cores.
    assert set(rising) == {
        ("cart", "container_cpu_usage:limit_ratio"),
        ("station", "container_cpu_usage_seconds:rate"),
    }
    assert rising["station", "container_cpu_usage_seconds:rate"].far_below_limit
    cart = rising["cart", "container_cpu_usage:limit_ratio"]
    assert cart.at_limit and not cart.far_below_limit
