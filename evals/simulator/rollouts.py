"""Rolling updates pod by pod, as a Kubernetes Deployment performs them.

A Deployment rolls out by giving a new ReplicaSet pods and taking them from the old one:
with the default strategy (``maxSurge`` 25%, ``maxUnavailable`` 25%, at least one pod at a
time) a new pod starts, serves once its readiness probe passes, and only then is an old pod
terminated; the next new pod follows. So over a few minutes the old pods' series end and new
series start, one after another, under new names: ``cart-<new hash>-<suffix>``. A new pod has
no history before it starts, and every new pod runs the new version.

:func:`roll` plans one rollout and applies it to the service's pods; :func:`serving` says
which pod takes traffic when, which is what the per-pod request series (``podtraffic.py``)
are split by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evals.simulator.telemetry import (
    BoolArray,
    PodSeries,
    ServiceSeries,
    Telemetry,
    noise,
    version_text,
)
from evals.simulator.topology import ServiceSpec, name_suffix

_AUTHORS = ("argocd", "flux", "ci-bot", "spinnaker", "github-actions", "jenkins")
_LINKS = (
    "https://github.com/acme/{service}/actions/runs/{run}",
    "https://argocd.example.com/applications/{service}?revision={run}",
    "https://ci.example.com/job/{service}-deploy/{run}/",
)


@dataclass(frozen=True)
class PodSwap:
    """One step of a rollout: ``new`` starts at ``start`` and serves from ``ready``; ``old``
    (None when the Deployment grew) serves until ``ready`` and is gone from then on."""

    old: str | None
    new: str | None
    start: int
    ready: int


@dataclass(frozen=True)
class Rollout:
    """One Deployment's rolling update: who changed, when, from which version to which."""

    service: str
    start: int  # sample the first new pod is first scraped
    swaps: tuple[PodSwap, ...]
    retired: tuple[str, ...]  # old pods scaled away at ``start`` (fewer replicas)
    from_version: str
    to_version: str
    template_hash: str
    replicas: tuple[int, int]  # before, after
    author: str
    link: str

    @property
    def new_pods(self) -> tuple[str, ...]:
        return tuple(s.new for s in self.swaps if s.new is not None)

    @property
    def old_pods(self) -> tuple[str, ...]:
        return (*self.retired, *(s.old for s in self.swaps if s.old is not None))

    @property
    def end(self) -> int:
        """The sample from which only new pods serve."""
        return max(s.ready for s in self.swaps)

    @property
    def first_ready(self) -> int:
        return min(s.ready for s in self.swaps)

    @property
    def change_id(self) -> str:
        """How the ground truth names this change: ``service@to_version``."""
        return f"{self.service}@{self.to_version}"


def _next_version(series: ServiceSeries, rng: np.random.Generator) -> tuple[int, int, int]:
    major, minor, patch = series.version
    return (major, minor + 1, 0) if rng.random() < 0.25 else (major, minor, patch + 1)


def plan_swaps(
    old: tuple[str, ...], new: tuple[str, ...], start: int, rng: np.random.Generator
) -> tuple[tuple[PodSwap, ...], tuple[str, ...]]:
    """New pods in batches of ``maxSurge`` (25% of the replicas, at least one), each batch
    1 to 3 samples after the previous one; a new pod serves from its first or second sample.
    Old pods beyond the new replica count are scaled away at once."""
    batch = max(1, math.ceil(len(new) / 4))
    retired = old[len(new) :]
    swaps: list[PodSwap] = []
    at = start
    for first in range(0, len(new), batch):
        for index in range(first, min(first + batch, len(new))):
            ready = at + int(rng.random() < 0.4)
            swaps.append(PodSwap(old[index] if index < len(old) else None, new[index], at, ready))
        at = max(s.ready for s in swaps) + int(rng.integers(1, 3))
    return tuple(swaps), retired


def roll(
    telemetry: Telemetry,
    spec: ServiceSpec,
    start: int,
    rng: np.random.Generator,
    replicas: int | None = None,
) -> Rollout:
    """Roll ``spec`` out from sample ``start``: new version, new ReplicaSet hash, new pods.

    ``replicas`` lowers the replica count with the same rollout (a manifest that changed both
    the image and ``replicas``). The new pods inherit their predecessors' resource profile
    with a little jitter, start with a cold cache and a start-up CPU burst; the generation
    steps at ``start``.
    """
    series = telemetry.services[spec.name]
    n = telemetry.timeline.length
    old = tuple(p.name for p in series.pods)
    count = len(old) if replicas is None else replicas
    template = name_suffix(rng, int(rng.integers(9, 11)))
    new = tuple(f"{spec.name}-{template}-{name_suffix(rng, 5)}" for _ in range(count))
    swaps, retired = plan_swaps(old, new, start, rng)
    previous = version_text(series.version)
    series.version = _next_version(series, rng)
    series.generation[start:] += 1
    by_name = {p.name: p for p in series.pods}
    for name in retired:
        by_name[name].alive[start:] = False
    for index, swap in enumerate(swaps):
        assert swap.new is not None
        parent = by_name[old[index % len(old)]]
        series.pods.append(_successor(parent, swap.new, swap.start, noise(rng, n, 0.05), rng))
        if swap.old is not None:
            by_name[swap.old].alive[min(n, swap.ready) :] = False
    author = _AUTHORS[int(rng.integers(len(_AUTHORS)))]
    link = _LINKS[int(rng.integers(len(_LINKS)))].format(
        service=spec.name, run=int(rng.integers(10**6, 10**7))
    )
    return Rollout(
        service=spec.name,
        start=start,
        swaps=swaps,
        retired=retired,
        from_version=previous,
        to_version=version_text(series.version),
        template_hash=template,
        replicas=(len(old), count),
        author=author,
        link=link,
    )


def _successor(
    parent: PodSeries, name: str, start: int, jitter: np.ndarray, rng: np.random.Generator
) -> PodSeries:
    """A new pod like ``parent``: alive from ``start``, a cold cache filling over 2-5
    samples, a start-up CPU burst; the new build may use a little more or less of either."""
    n = len(parent.cpu)
    cpu = parent.cpu * jitter * rng.uniform(0.92, 1.08)
    memory = parent.memory * np.sqrt(jitter) * rng.uniform(0.9, 1.12)
    warm = slice(start, min(n, start + int(rng.integers(2, 6))))
    memory[warm] *= np.linspace(0.55, 0.95, warm.stop - warm.start)
    burst = slice(start, min(n, start + int(rng.integers(1, 3))))
    cpu[burst] = np.minimum(cpu[burst] * rng.uniform(1.5, 2.5), parent.cpu_limit)
    alive = np.zeros(n, dtype=bool)
    alive[start:] = True
    return PodSeries(
        name=name,
        cpu=np.minimum(cpu, parent.cpu_limit),
        cpu_limit=parent.cpu_limit,
        memory=np.minimum(memory, parent.memory_limit * 0.97),
        memory_limit=parent.memory_limit,
        restarts=np.zeros(n),
        throttled=parent.throttled.copy(),
        alive=alive,
    )


def serving(series: ServiceSeries, rollouts: dict[str, Rollout], service: str) -> list[BoolArray]:
    """Per pod of ``series``: the samples in which it takes traffic.

    A pod serves while it lives, except a new pod before its readiness probe passed and an
    old pod from the sample its replacement serves (it is terminating)."""
    rollout = rollouts.get(service)
    masks = [p.alive.copy() for p in series.pods]
    if rollout is None:
        return masks
    index = {p.name: i for i, p in enumerate(series.pods)}
    for swap in rollout.swaps:
        if swap.new is not None:
            masks[index[swap.new]][: swap.ready] = False
        if swap.old is not None:
            masks[index[swap.old]][swap.ready :] = False
    return masks
