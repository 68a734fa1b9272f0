"""Rollouts and pod versions from the kube-state-metrics series people already scrape.

A Deployment rolls out by giving a new ReplicaSet pods; so a ReplicaSet of a Deployment that
gets pods while another one had been running is a deploy, from the old ReplicaSet's version
to the new one's. :class:`KubeChanges` reads, over one window, through a
:class:`~connectors.prometheus.PrometheusSource` (its auth, timeouts and retries):

- ``kube_pod_owner`` (pod -> ReplicaSet) and ``kube_replicaset_owner`` (ReplicaSet ->
  Deployment): which pods belong to which version of which Deployment, and when;
- ``kube_pod_container_info{image}``: the image each pod runs; a version is named by its
  image tag when the Deployment's ReplicaSets all differ in it, else by the ReplicaSet's
  pod-template-hash (a config-only rollout keeps the image);
- ``kube_pod_start_time``: when the first new pod started, to the second;
- ``kube_deployment_spec_replicas``: scaling, as ``scale`` changes.

It returns :class:`~agent.models.Change` objects (source ``prometheus``, with the
Deployment's ``namespace``) and one version series per pod (``kube_pod_owner`` with
``version``, ``pod_template_hash`` and ``image`` labels), which is how a snapshot says which
version each pod ran (:func:`agent.changes.pod_versions`). Deployment generation steps come
with the catalog's signals and are judged by :func:`agent.changes.changes_from_signals`.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.changes import changes_from_signals, image_version
from agent.errors import SourceError
from agent.models import Change, ChangeKind, Signal, SignalKind
from connectors.prometheus import DEFAULT_BUDGET_S, PrometheusSource, SourceUnusable
from connectors.promplan import QueryPlan, graph_link, on_grid
from connectors.promql import join_matchers, quote, regex_literal

SOURCE = "kube-state-metrics"
VERSION_SERIES = "kube_pod_owner"
# Containers that ride along in a pod and do not say which version of the app it runs.
_SIDECARS = frozenset({"istio-proxy", "linkerd-proxy", "envoy", "istio-init", "vault-agent"})

# name -> (grouping labels, metric, fixed matchers)
QUERIES: dict[str, tuple[str, str, str]] = {
    "replicasets": (
        "namespace, replicaset, owner_name",
        "kube_replicaset_owner",
        'owner_kind="Deployment"',
    ),
    "pods": ("namespace, pod, owner_name", "kube_pod_owner", 'owner_kind="ReplicaSet"'),
    "images": ("namespace, pod, container, image", "kube_pod_container_info", ""),
    "starts": ("namespace, pod", "kube_pod_start_time", ""),
    "replicas": ("namespace, deployment", "kube_deployment_spec_replicas", ""),
}


def query(name: str, matchers: str) -> str:
    """The PromQL of one of :data:`QUERIES`, scoped by ``matchers`` (selector, namespace)."""
    by, metric, fixed = QUERIES[name]
    return f"max by ({by}) ({metric}{{{join_matchers(fixed, matchers)}}})"


@dataclass
class ChangeFetch:
    """What one fetch found: changes, per-pod version series, failed queries, notes."""

    changes: list[Change] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class KubeSeries:
    """The query results a fetch reads, by query name (Prometheus ``matrix`` results)."""

    results: dict[str, list[dict[str, Any]]]

    def of(self, name: str) -> list[dict[str, Any]]:
        return self.results.get(name, [])


class KubeChanges:
    """Deploys, scales and pod versions of Kubernetes Deployments over one window."""

    name = SOURCE

    def __init__(self, source: PrometheusSource) -> None:
        self.source = source

    def fetch(
        self,
        start: datetime,
        end: datetime,
        alert_labels: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> ChangeFetch:
        """Run the queries over ``[start, end]``; a failed query is recorded, not raised,
        unless the server cannot be used at all."""
        until = deadline if deadline is not None else time.monotonic() + DEFAULT_BUDGET_S
        plan, _ = self.source.plan(start, end, (), alert_labels or {}, until)
        results: dict[str, list[dict[str, Any]]] = {}
        failures: list[str] = []
        for name in QUERIES:
            what = f"{SOURCE} {name}"
            try:
                results[name] = self.source.range_query(query(name, plan.filter), plan, what, until)
            except SourceUnusable:
                raise
            except SourceError as exc:
                failures.append(exc.message)
        fetch = read_changes(
            KubeSeries(results), plan, self.source.settings.graph_url or self.source.url
        )
        fetch.failures = failures
        return fetch


# --- reading the results: pure ------------------------------------------------------------


def _owned(series: list[dict[str, Any]], child: str) -> dict[tuple[str, str], str]:
    """(namespace, child) -> owner name."""
    owners: dict[tuple[str, str], str] = {}
    for item in series:
        labels = item.get("metric", {})
        if labels.get(child) and labels.get("owner_name"):
            owners[(labels.get("namespace", ""), labels[child])] = labels["owner_name"]
    return owners


def _main_image(deployment: str, containers: Mapping[str, str]) -> str | None:
    """The image of the container that is the app: named as the Deployment, else the only
    one that is not a known sidecar, else the first by name."""
    if deployment in containers:
        return containers[deployment]
    apps = {c: i for c, i in containers.items() if c not in _SIDECARS}
    named = [i for c, i in sorted(apps.items()) if deployment in i.rsplit("/", 1)[-1]]
    if named:
        return named[0]
    return apps[min(apps)] if apps else None


def _hash(replicaset: str, deployment: str) -> str:
    prefix = f"{deployment}-"
    return replicaset[len(prefix) :] if replicaset.startswith(prefix) else replicaset


def _version_names(images: Mapping[str, str | None], deployment: str) -> dict[str, str]:
    """ReplicaSet -> the version name: image tags when they tell every ReplicaSet apart,
    else pod-template-hashes (so two ReplicaSets never share a name)."""
    tags = {rs: image_version(image) for rs, image in images.items() if image}
    if len(tags) == len(images) and len(set(tags.values())) == len(tags):
        return tags
    return {rs: _hash(rs, deployment) for rs in images}


def _pod_series(
    kube: KubeSeries, plan: QueryPlan
) -> tuple[list[Signal], dict[tuple[str, str], float]]:
    """One version series per pod of a Deployment, and each pod's start time."""
    rs_owner = _owned(kube.of("replicasets"), "replicaset")
    containers: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for item in kube.of("images"):
        labels = item.get("metric", {})
        if labels.get("pod") and labels.get("container") and labels.get("image"):
            key = (labels.get("namespace", ""), labels["pod"])
            containers[key][labels["container"]] = labels["image"]
    starts = {
        (item["metric"].get("namespace", ""), item["metric"]["pod"]): float(item["values"][-1][1])
        for item in kube.of("starts")
        if item.get("metric", {}).get("pod") and item.get("values")
    }
    pods: list[tuple[str, str, str, str, Any]] = []  # namespace, deployment, rs, pod, points
    rs_images: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for item in kube.of("pods"):
        labels = item.get("metric", {})
        namespace, pod, replicaset = (
            labels.get("namespace", ""),
            labels.get("pod"),
            labels.get("owner_name"),
        )
        deployment = rs_owner.get((namespace, replicaset or ""))
        if not pod or not replicaset or deployment is None:
            continue  # a pod of a bare ReplicaSet, a Job or a StatefulSet: no rollout to see
        pods.append((namespace, deployment, replicaset, pod, item.get("values", [])))
        image = _main_image(deployment, containers.get((namespace, pod), {}))
        if image:
            rs_images[(namespace, replicaset)][image] += 1
    by_deployment: dict[tuple[str, str], dict[str, str | None]] = defaultdict(dict)
    for namespace, deployment, replicaset, _, _ in pods:
        counts = rs_images.get((namespace, replicaset))
        by_deployment[(namespace, deployment)][replicaset] = (
            counts.most_common(1)[0][0] if counts else None
        )
    names = {key: _version_names(images, key[1]) for key, images in by_deployment.items()}
    signals: list[Signal] = []
    for namespace, deployment, replicaset, pod, points in pods:
        timestamps, values = on_grid(points, plan, trim=True)
        if not timestamps:
            continue
        labels = {
            "version": names[(namespace, deployment)][replicaset],
            "pod_template_hash": _hash(replicaset, deployment),
            "replicaset": replicaset,
        }
        if image := by_deployment[(namespace, deployment)][replicaset]:
            labels["image"] = image
        if namespace:
            labels["namespace"] = namespace
        signals.append(
            Signal(
                service=deployment,
                name=VERSION_SERIES,
                kind=SignalKind.OTHER,
                pod=pod,
                resolution_s=float(plan.step_s),
                timestamps=timestamps,
                values=values,
                labels=labels,
                origin=f"prometheus: {query('pods', plan.filter)}",
            )
        )
    return signals, starts


def _replica_series(kube: KubeSeries, plan: QueryPlan) -> list[Signal]:
    signals = []
    for item in kube.of("replicas"):
        labels = item.get("metric", {})
        deployment = labels.get("deployment")
        timestamps, values = on_grid(item.get("values", []), plan, trim=True)
        if deployment and timestamps:
            namespace = labels.get("namespace")
            signals.append(
                Signal(
                    service=deployment,
                    name="kube_deployment_spec_replicas",
                    kind=SignalKind.CHANGE,
                    timestamps=timestamps,
                    values=values,
                    labels={"namespace": namespace} if namespace else {},
                )
            )
    return signals


def _started(
    change: Change, pods: Sequence[Signal], starts: Mapping[tuple[str, str], float], step: float
) -> Change:
    """The deploy's time to the second: when its first new pod started, if that is within a
    step or two of the scrape that first saw it."""
    at = change.at.timestamp()
    seen = [
        starts[(s.labels.get("namespace", ""), s.pod)]
        for s in pods
        if s.service == change.service
        and s.labels.get("version") == change.to_version
        and s.pod is not None
        and (s.labels.get("namespace", ""), s.pod) in starts
    ]
    near = [t for t in seen if at - 2 * step <= t <= at + step]
    if not near:
        return change
    return change.model_copy(update={"at": datetime.fromtimestamp(min(near), tz=change.at.tzinfo)})


def _link(deployment: str, plan: QueryPlan, base_url: str) -> str:
    """The Deployment's pods by ReplicaSet over the window, in Prometheus' graph."""
    owner = f"owner_name=~{quote(regex_literal(deployment) + '-[a-z0-9]+')}"
    matchers = join_matchers('owner_kind="ReplicaSet"', owner, plan.filter)
    return graph_link(base_url, f"count by (owner_name) (kube_pod_owner{{{matchers}}})", plan)


def _namespace(change: Change, series: Sequence[Signal]) -> str | None:
    """The namespace of the Deployment that changed, from the series that showed it: a
    deploy's new pods, else any of its series. None where the name is a Deployment in more
    than one namespace, so that a rollback never names a namespace we guessed."""
    own = [s for s in series if s.service == change.service and s.labels.get("namespace")]
    new = [s for s in own if s.pod is not None and s.labels.get("version") == change.to_version]
    if change.kind is not ChangeKind.DEPLOY or not new:
        new = own
    found = {s.labels["namespace"] for s in new}
    return found.pop() if len(found) == 1 else None


def read_changes(kube: KubeSeries, plan: QueryPlan, base_url: str) -> ChangeFetch:
    """Changes and per-pod version series from the query results (see the module doc)."""
    pods, starts = _pod_series(kube, plan)
    series = [*pods, *_replica_series(kube, plan)]
    changes = []
    for change in changes_from_signals(series):
        timed = _started(change, pods, starts, float(plan.step_s))
        update = {
            "source": "prometheus",
            "link": _link(change.service, plan, base_url),
            "namespace": _namespace(change, series),
        }
        changes.append(timed.model_copy(update=update))
    return ChangeFetch(changes=changes, signals=pods)


def aligned(
    fetch: ChangeFetch, signals: Sequence[Signal], services: Sequence[str] = ()
) -> ChangeFetch:
    """The fetch with each Deployment named as the metric signals name its pods' service
    (a ``cartservice`` Deployment whose pods' series say ``cart`` becomes ``cart``), and only
    ``services`` when given."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    service_of_pod = {s.pod: s.service for s in signals if s.pod is not None}
    for signal in fetch.signals:
        if signal.pod in service_of_pod:
            votes[signal.service][service_of_pod[signal.pod]] += 1
    rename = {deployment: count.most_common(1)[0][0] for deployment, count in votes.items()}

    def keep(service: str) -> bool:
        return not services or service in services

    return ChangeFetch(
        changes=[
            c.model_copy(update={"service": rename.get(c.service, c.service)})
            for c in fetch.changes
            if keep(rename.get(c.service, c.service))
        ],
        signals=[
            s.model_copy(update={"service": rename.get(s.service, s.service)})
            for s in fetch.signals
            if keep(rename.get(s.service, s.service))
        ],
        failures=fetch.failures,
        notes=fetch.notes,
    )
