"""The simulator's own, unit-fixed view of every series before it is named and rendered.

Faults, red herrings and logs all work on these arrays in canonical units (seconds, cores,
bytes, ratios), so that the naming dialect, the units and the raw exports can vary per
scenario without touching the physics. ``NaN`` marks a point that was never scraped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from evals.simulator.topology import ServiceSpec, replica_pods

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MIB = 1024.0 * 1024.0
GIB = 1024.0 * MIB

# Exponential smoothing kernel with unit energy: smoothed white noise keeps unit variance.
_KERNEL = 0.7 ** np.arange(9)
_KERNEL /= np.sqrt(np.sum(_KERNEL**2))


@dataclass(frozen=True)
class Timeline:
    """The sample grid shared by every series of a scenario."""

    start: float
    resolution: int
    length: int

    @cached_property
    def times(self) -> FloatArray:
        return self.start + self.resolution * np.arange(self.length, dtype=np.float64)

    def time(self, index: int) -> float:
        return self.start + self.resolution * index

    @property
    def end(self) -> float:
        return self.time(self.length - 1)


@dataclass
class PodSeries:
    """One pod's container metrics; ``alive`` is False before it started or after it went."""

    name: str
    cpu: FloatArray  # cores
    cpu_limit: float
    memory: FloatArray  # working-set bytes
    memory_limit: float
    restarts: FloatArray  # cumulative container restarts
    throttled: FloatArray  # share of CFS periods throttled
    alive: BoolArray


@dataclass
class ServiceSeries:
    """Service-level series; ``latency`` rows are the p50, p90 and p99 in seconds."""

    rps: FloatArray
    error_ratio: FloatArray
    latency: FloatArray
    net_errors: FloatArray  # TCP retransmits or dropped packets per second
    generation: FloatArray
    up: FloatArray
    pods: list[PodSeries]
    noise: float
    version: tuple[int, int, int]
    pool_size: int = 0
    pool_in_use: FloatArray | None = None
    pool_pending: FloatArray | None = None
    disk_bytes: float = 0.0
    disk_used: FloatArray | None = None  # share of the volume in use

    def live_pods(self, index: int) -> list[PodSeries]:
        return [p for p in self.pods if p.alive[index]]

    def arrays(self) -> list[FloatArray]:
        """Every scraped array of this service and its pods (views, for in-place edits)."""
        optional = (self.pool_in_use, self.pool_pending, self.disk_used)
        arrays = [self.rps, self.error_ratio, self.latency, self.net_errors, self.generation]
        arrays += [self.up, *(a for a in optional if a is not None)]
        for pod in self.pods:
            arrays += [pod.cpu, pod.memory, pod.restarts, pod.throttled]
        return arrays


@dataclass(frozen=True)
class Event:
    """Something that happened at one sample and leaves log lines: a deploy, an OOM kill."""

    index: int
    service: str
    kind: str
    pod: str | None = None
    detail: dict[str, str] = field(default_factory=dict)


@dataclass
class Telemetry:
    timeline: Timeline
    load: FloatArray
    services: dict[str, ServiceSeries]
    events: list[Event] = field(default_factory=list)
    # The series before scrapes were missed: what the exporters counted (``scrape.py``).
    counted: dict[str, ServiceSeries] | None = None


def noise(rng: np.random.Generator, n: int, sigma: float) -> FloatArray:
    """Multiplicative noise: slowly wandering plus heavy-tailed shocks, median 1."""
    smooth = np.convolve(rng.standard_normal(n + len(_KERNEL) - 1), _KERNEL, mode="valid")
    shocks = np.clip(rng.standard_t(3, n) / np.sqrt(3.0), -6.0, 6.0)
    return np.asarray(np.exp(sigma * (0.6 * smooth + 0.8 * shocks)), dtype=np.float64)


def version_text(version: tuple[int, int, int]) -> str:
    return "v{}.{}.{}".format(*version)


def roll_out(
    series: ServiceSeries,
    spec: ServiceSpec,
    index: int,
    rng: np.random.Generator,
    version: tuple[int, int, int] | None = None,
) -> tuple[str, str]:
    """A rolling update at ``index``: new pods (or restarted StatefulSet pods), a new generation.

    New pods start with a cold cache and a JIT/start-up CPU burst; old ones linger for a
    sample or two. ``version`` pins the new version (a rollback); the default is the next one.
    Returns the previous and the new version text.
    """
    n = len(series.rps)
    previous = version_text(series.version)
    major, minor, patch = series.version
    upgrade = (major, minor + 1, 0) if rng.random() < 0.2 else (major, minor, patch + 1)
    series.version = version or upgrade
    series.generation[index:] += 1
    overlap = int(rng.integers(1, 3))
    live = series.live_pods(index)
    names = replica_pods(rng, spec.name, len(live))
    for pod, name in zip(live, names, strict=True):
        if spec.is_datastore:  # a StatefulSet recreates its pods under the same names
            fresh = pod
            fresh.restarts[index:] = 0.0
        else:
            fresh = _successor(pod, name, index, noise(rng, n, 0.05))
            pod.alive[min(n, index + overlap) :] = False
            series.pods.append(fresh)
        warm = slice(index, min(n, index + int(rng.integers(2, 6))))
        fresh.memory[warm] *= np.linspace(0.55, 0.95, warm.stop - warm.start)
        burst = slice(index, min(n, index + 2))
        fresh.cpu[burst] = np.minimum(fresh.cpu[burst] * rng.uniform(1.5, 2.5), pod.cpu_limit)
    return previous, version_text(series.version)


def _successor(pod: PodSeries, name: str, index: int, jitter: FloatArray) -> PodSeries:
    n = len(pod.cpu)
    fresh = PodSeries(
        name=name,
        cpu=pod.cpu * jitter,
        cpu_limit=pod.cpu_limit,
        memory=pod.memory * np.sqrt(jitter),
        memory_limit=pod.memory_limit,
        restarts=np.zeros(n),
        throttled=pod.throttled.copy(),
        alive=np.zeros(n, dtype=bool),
    )
    fresh.alive[index:] = True
    return fresh
