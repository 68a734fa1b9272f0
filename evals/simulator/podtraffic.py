"""Requests per pod: how a service's traffic, errors and latency split over its pods.

The main simulator keeps request quantities per service; a rollout needs them per pod,
because the new version's pods are where a defect shows first and a healthy rollout's new
pods look like its old ones. A service's load balancer spreads requests over the pods that
serve (a little unevenly); every pod sees what the whole service sees from its callees
(propagated symptoms), and a pod's own trouble (a defect in its build, a saturated CPU) is
its own. The service's series are then what a query over the pods returns: the sum of the
rates, the request-weighted error ratio, and latency quantiles mixed from the pods'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evals.simulator.plan import Symptom
from evals.simulator.rollouts import Rollout, serving
from evals.simulator.telemetry import FloatArray, ServiceSeries, Telemetry, noise
from evals.simulator.topology import ServiceGraph


@dataclass(frozen=True)
class Split:
    """Each pod's share of its service's requests at each sample (rows follow ``pods``)."""

    pods: tuple[str, ...]
    shares: FloatArray

    def share_of(self, pods: tuple[str, ...]) -> FloatArray:
        rows = [i for i, name in enumerate(self.pods) if name in pods]
        return np.asarray(self.shares[rows].sum(axis=0), dtype=np.float64)


@dataclass
class PodRequests:
    """One pod's request series: rate, error ratio and latency (rows p50/p90/p99, seconds);
    ``NaN`` where the pod served nothing."""

    rps: FloatArray
    error_ratio: FloatArray
    latency: FloatArray


@dataclass
class PodEffects:
    """What pods see on their own, beyond their service: extra error ratio and extra latency
    (seconds, rows p50/p90/p99), and a factor on latency (queueing on a saturated pod)."""

    errors: dict[str, FloatArray] = field(default_factory=dict)
    latency: dict[str, FloatArray] = field(default_factory=dict)
    slowdown: dict[str, FloatArray] = field(default_factory=dict)

    def add_errors(self, pod: str, extra: FloatArray) -> None:
        self.errors[pod] = self.errors.get(pod, 0.0) + extra

    def add_latency(self, pod: str, extra: FloatArray) -> None:
        self.latency[pod] = self.latency.get(pod, 0.0) + extra

    def slow(self, pod: str, factor: FloatArray) -> None:
        self.slowdown[pod] = self.slowdown.get(pod, 1.0) * factor


def traffic_splits(
    telemetry: Telemetry, rollouts: dict[str, Rollout], rng: np.random.Generator
) -> dict[str, Split]:
    """How each service's requests split over its serving pods, a little unevenly."""
    splits: dict[str, Split] = {}
    for name, series in telemetry.services.items():
        if not series.pods:
            continue
        masks = np.vstack(serving(series, rollouts, name)).astype(np.float64)
        weights = np.exp(rng.normal(0.0, 0.08, len(series.pods)))[:, None]
        weighted = masks * weights
        total = weighted.sum(axis=0)
        shares = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), 0.0)
        splits[name] = Split(tuple(p.name for p in series.pods), shares)
    return splits


def load_cpu(series: ServiceSeries, split: Split, replicas: int) -> None:
    """CPU follows each pod's share of the requests (``replicas`` pods sharing evenly is the
    profile the pods were drawn with); throttling follows CPU against the limit."""
    for pod, share in zip(series.pods, split.shares, strict=True):
        load = share * replicas
        pod.cpu = np.minimum(pod.cpu * (0.3 + 0.7 * load), pod.cpu_limit)
        busy = np.clip((pod.cpu / pod.cpu_limit - 0.55) * 1.5, 0, 1)
        pod.throttled = np.clip(np.maximum(pod.throttled, busy), 0, 1)


def start_up(
    telemetry: Telemetry, rollout: Rollout, effects: PodEffects, rng: np.random.Generator
) -> None:
    """What every rollout looks like, healthy or not: a new pod's first requests are slow
    (cold caches, a JIT still compiling), and an old pod's last ones may fail while it
    drains its connections."""
    n = telemetry.timeline.length
    for swap in rollout.swaps:
        if swap.new is not None and swap.ready < n:
            factor = np.ones(n)
            warm = min(n, swap.ready + int(rng.integers(1, 3)))
            factor[swap.ready : warm] = rng.uniform(1.1, 1.8)
            effects.slow(swap.new, factor)
        if swap.old is not None and 0 < swap.ready <= n and rng.random() < 0.5:
            blip = np.zeros(n)
            blip[swap.ready - 1] = rng.uniform(0.0, 0.02)
            effects.add_errors(swap.old, blip)


def _monotone(latency: FloatArray) -> FloatArray:
    return np.asarray(np.maximum.accumulate(latency, axis=0), dtype=np.float64)


def _pod(
    series: ServiceSeries,
    name: str,
    share: FloatArray,
    symptom: Symptom | None,
    effects: PodEffects,
    rng: np.random.Generator,
) -> PodRequests:
    n = len(share)
    sigma = series.noise
    served = share > 0
    rps = series.rps * share * noise(rng, n, 0.03)
    errors = np.clip(series.error_ratio * noise(rng, n, sigma * 3), 0, 1)
    latency = series.latency * rng.uniform(0.92, 1.08) * noise(rng, n, sigma)
    if symptom is not None:
        jitter = noise(rng, n, sigma)
        errors = errors + symptom.errors * jitter
        latency = np.maximum(latency + symptom.latency * jitter, 0.3 * latency)
    latency = latency * effects.slowdown.get(name, 1.0)
    extra = effects.latency.get(name)
    if extra is not None:
        latency = np.maximum(latency + extra, 0.2 * latency)
    errors = np.clip(errors + effects.errors.get(name, 0.0), 0, 1)
    return PodRequests(
        rps=np.where(served, rps, np.where(np.isfinite(rps), 0.0, np.nan)),
        error_ratio=np.where(served, errors, np.nan),
        latency=np.where(served, _monotone(latency), np.nan),
    )


def _aggregate(series: ServiceSeries, pods: list[PodRequests]) -> None:
    """The service's series as a query over its pods returns them."""
    rps = np.vstack([p.rps for p in pods])
    present = np.isfinite(rps)
    total = np.where(present, rps, 0.0).sum(axis=0)
    failed = np.nansum(np.vstack([p.rps * p.error_ratio for p in pods]), axis=0)
    weights = np.where(present, rps, 0.0) / np.where(total > 0, total, 1.0)
    latency = np.stack([np.nan_to_num(p.latency) for p in pods])  # pods x 3 x n
    mixed = (weights[:, None, :] * latency).sum(axis=0)
    tail = ((weights * latency[:, 2, :] ** 4).sum(axis=0)) ** 0.25
    mixed[2] = np.maximum(tail, mixed[1])
    any_pod = present.any(axis=0)
    series.rps = np.where(any_pod, total, np.nan)
    series.error_ratio = np.where(total > 0, failed / np.where(total > 0, total, 1.0), np.nan)
    series.latency = np.where(total > 0, _monotone(mixed), np.nan)


def split_requests(
    telemetry: Telemetry,
    graph: ServiceGraph,
    splits: dict[str, Split],
    symptoms: dict[str, Symptom],
    effects: PodEffects,
    keep: frozenset[str] = frozenset(),
    rng: np.random.Generator | None = None,
) -> dict[str, PodRequests]:
    """Every pod's request series, and each service's recomputed from its pods.

    ``symptoms`` reach every pod of their service; ``effects`` reach single pods. Services
    in ``keep`` (a dead dependency) keep their own series and get no per-pod requests.
    """
    rng = rng or np.random.default_rng(0)
    pods: dict[str, PodRequests] = {}
    n = telemetry.timeline.length
    for spec in graph.services:
        series = telemetry.services[spec.name]
        symptom = symptoms.get(spec.name)
        if spec.name in keep:
            continue
        if spec.name not in splits:  # an external API: no pods, the service is all there is
            if symptom is not None:
                jitter = noise(rng, n, series.noise)
                grown = series.latency + symptom.latency * jitter
                series.latency = _monotone(np.maximum(grown, 0.3 * series.latency))
                series.error_ratio = np.clip(series.error_ratio + symptom.errors * jitter, 0, 1)
            continue
        split = splits[spec.name]
        requests = [
            _pod(series, name, share, symptom, effects, rng)
            for name, share in zip(split.pods, split.shares, strict=True)
        ]
        pods.update(zip(split.pods, requests, strict=True))
        _aggregate(series, requests)
    return pods
