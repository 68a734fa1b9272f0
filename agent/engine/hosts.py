"""Which services share a node: a pod that burns its node's CPU slows its neighbours.

A noisy neighbour is a cause whose harm shows on *other* services: its own latency may stay
flat (a stress process, a batch job) while a pod on the same node gets slow. To tell, the
engine needs to know who runs where. A series' ``node`` label (kube-state-metrics, cAdvisor
with relabelling) says it outright; otherwise node-level series (node_exporter's, or a
per-pod copy of them, :func:`agent.engine.detect.kinds.host_level`) that carry the very same
values for two services were read off the same node.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from agent.engine.detect.kinds import host_level
from agent.models import Signal

NODE_LABELS = ("node", "kubernetes_node", "nodename")
MIN_SAMPLES = 5  # fewer equal values can be a coincidence (two idle nodes at 0%)


def _node_keys(signal: Signal) -> Iterable[tuple[str, ...]]:
    for label in NODE_LABELS:
        if value := signal.labels.get(label):
            yield ("label", value)
    if not host_level(signal):
        return
    present = [v for v in signal.values if v is not None]
    if len(present) >= MIN_SAMPLES and min(present) != max(present):
        yield (signal.name, *(f"{v:.6g}" for v in present))


def colocated(signals: list[Signal]) -> dict[str, frozenset[str]]:
    """For each service, the other services with a pod on one of its nodes."""
    on_node: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for signal in signals:
        for key in _node_keys(signal):
            on_node[key].add(signal.service)
    mates: dict[str, set[str]] = defaultdict(set)
    for services in on_node.values():
        if len(services) > 1:
            for service in services:
                mates[service] |= services - {service}
    return {service: frozenset(others) for service, others in mates.items()}
