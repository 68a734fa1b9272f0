"""kube-state-metrics-shaped series for promtool to backfill: the pods of a namespace's
Deployments over one hour of 30 s scrapes from ``T0``, written as OpenMetrics text.

Shared by test_k8s_changes.py (a rollout, a scale-up, a config push) and test_rollout_e2e.py
(a defective rollout through to Slack); each lists its own pods and adds its own families.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

T0 = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)
SCRAPE = 30
END_S = 3600


@dataclass(frozen=True)
class Pod:
    deployment: str
    replicaset: str
    name: str
    image: str  # the tag of the Deployment's container
    started: float  # seconds after T0
    gone: float = END_S + 1
    failing: float = 0.0  # share of requests answering 500, where a test counts requests

    def scrapes(self, since: float = -math.inf) -> list[int]:
        """The scrape times (seconds after T0) while the pod runs, none before ``since``."""
        first = max(-(-self.started // SCRAPE) * SCRAPE, since)
        return [t for t in range(int(first), END_S + 1, SCRAPE) if t < self.gone]


def line(name: str, labels: dict[str, str], value: float, at: float) -> str:
    """One OpenMetrics sample, ``at`` seconds after T0."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {value:.12g} {int(T0.timestamp() + at)}"


def kube_state_series(
    pods: Sequence[Pod],
    replicaset_created: Mapping[str, float],
    namespace: str,
    sidecar: str | None = None,
    since: float = -math.inf,
) -> list[str]:
    """kube-state-metrics' ownership, image and start-time series and cAdvisor's memory, family
    by family (promtool's order), without the closing ``# EOF``.

    A ReplicaSet not in ``replicaset_created`` exists from T0; ``sidecar`` is the image of an
    istio-proxy container in every pod; a pod's series start at ``since`` where it started
    earlier.
    """
    ns = {"namespace": namespace}
    grid = range(0, END_S + 1, SCRAPE)
    out = ["# TYPE up gauge"]
    out += [line("up", {**ns, "job": "kube-state-metrics"}, 1, t) for t in grid]
    out.append("# TYPE kube_replicaset_owner gauge")
    for replicaset in sorted({p.replicaset for p in pods}):
        labels = {**ns, "replicaset": replicaset, "owner_kind": "Deployment"}
        labels |= {"owner_name": replicaset.rsplit("-", 1)[0], "owner_is_controller": "true"}
        created = replicaset_created.get(replicaset, 0)
        out += [line("kube_replicaset_owner", labels, 1, t) for t in grid if t >= created]

    def containers(p: Pod) -> list[tuple[dict[str, str], float]]:
        image = f"ghcr.io/shop/{p.deployment}:{p.image}"
        info = [({"container": p.deployment, "image": image}, 1.0)]
        if sidecar is not None:
            info.append(({"container": "istio-proxy", "image": sidecar}, 1.0))
        return info

    families: dict[str, Callable[[Pod], list[tuple[dict[str, str], float]]]] = {
        "kube_pod_owner": lambda p: [({"owner_kind": "ReplicaSet", "owner_name": p.replicaset}, 1)],
        "kube_pod_start_time": lambda p: [({}, T0.timestamp() + p.started)],
        "kube_pod_container_info": containers,
        "container_memory_working_set_bytes": lambda p: [({"container": p.deployment}, 2.5e8)],
    }
    for family, series in families.items():
        out.append(f"# TYPE {family} gauge")
        for pod in pods:
            for extra, value in series(pod):
                labels = {**ns, "pod": pod.name, **extra}
                out += [line(family, labels, value, t) for t in pod.scrapes(since)]
    return out
