"""What a defective build does once its pods serve: the defects a bad rollout ships.

Every defect lives on the new version's pods only, so while a rollout is under way the old
pods serve normally beside the new ones, and the service as a whole gets worse as the new
pods take over its traffic. Callers see the service-level part (``Harm.symptom``), which
:func:`~evals.simulator.propagation.propagate` carries upstream.

| defect | on the new pods | what others see |
| --- | --- | --- |
| ``throws`` | 5xx at once, fast failures | upstream 5xx |
| ``wrong_values`` | nothing: requests succeed with wrong answers | callers' own errors |
| ``slow_queries`` | latency up, CPU down (waiting), pool filling | caller latency, database CPU |
| ``memory_leak`` | memory climbs from start, OOM kills, GC latency | upstream 5xx at each kill |
| ``scale_down`` | fewer, busier pods: CPU, throttling, queueing latency | caller latency |
| ``bad_config`` | most requests fail from the first sample, maybe a crash loop | upstream 5xx |
| ``missing_call`` | slightly faster (less work) | one callee's traffic drops |

A delayed defect (a code path only some traffic reaches) leaves the new pods normal until
minutes after the rollout ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from evals.simulator.plan import Symptom, typical_latency
from evals.simulator.podtraffic import PodEffects, Split
from evals.simulator.rollouts import Rollout
from evals.simulator.telemetry import FloatArray, PodSeries, Telemetry, noise
from evals.simulator.topology import ServiceGraph


class DefectKind(StrEnum):
    THROWS = "throws"
    WRONG_VALUES = "wrong_values"
    SLOW_QUERIES = "slow_queries"
    MEMORY_LEAK = "memory_leak"
    SCALE_DOWN = "scale_down"
    BAD_CONFIG = "bad_config"
    MISSING_CALL = "missing_call"


# Defects that can hide in a code path only some traffic reaches.
DELAYABLE = frozenset(
    {DefectKind.THROWS, DefectKind.WRONG_VALUES, DefectKind.SLOW_QUERIES, DefectKind.MISSING_CALL}
)


@dataclass(frozen=True)
class Defect:
    """What is wrong with the new build; ``delay``: samples after its rollout ended before
    traffic reaches the broken path (0: from the first request); ``callee``: the call a
    ``missing_call`` build no longer makes."""

    kind: DefectKind
    severity: float
    delay: int = 0
    callee: str | None = None


@dataclass(frozen=True)
class RolloutPlan:
    """An incident's rollouts, and the defective one with its defect (None: all healthy)."""

    rollouts: tuple[Rollout, ...]
    defective: Rollout | None
    defect: Defect | None

    @property
    def healthy(self) -> tuple[Rollout, ...]:
        return tuple(r for r in self.rollouts if r is not self.defective)


@dataclass
class Harm:
    """What the defect did: when it first bit, the service-level symptom its callers see,
    and the services whose traffic fell (by the share of their requests lost)."""

    onset: int
    symptom: Symptom
    own: Symptom
    dropped: dict[str, FloatArray] = field(default_factory=dict)


@dataclass
class Context:
    telemetry: Telemetry
    graph: ServiceGraph
    rollout: Rollout
    split: Split
    effects: PodEffects
    defect: Defect
    rng: np.random.Generator

    @property
    def n(self) -> int:
        return self.telemetry.timeline.length

    @property
    def trigger(self) -> int:
        """First sample the broken path is reached."""
        if self.defect.delay:
            return min(self.n - 1, self.rollout.end + self.defect.delay)
        return self.rollout.first_ready

    def bitten(self) -> FloatArray:
        env = np.zeros(self.n)
        env[self.trigger :] = 1.0
        return env

    def active(self, pod: str) -> FloatArray:
        """1 where ``pod`` serves requests that meet the defect."""
        share = self.split.shares[self.split.pods.index(pod)]
        return np.asarray((share > 0) * self.bitten(), dtype=np.float64)

    def new_share(self) -> FloatArray:
        """Share of the service's requests that meet the defect."""
        return self.split.share_of(self.rollout.new_pods) * self.bitten()

    def new_pods(self) -> list[PodSeries]:
        series = self.telemetry.services[self.rollout.service]
        return [p for p in series.pods if p.name in self.rollout.new_pods]

    def typical(self) -> FloatArray:
        return typical_latency(self.telemetry.services[self.rollout.service], self.rollout.start)


def mix(share: FloatArray) -> FloatArray:
    """How trouble on ``share`` of the requests shows in the p50, p90 and p99: tails first."""
    return np.vstack(
        [
            np.where(share > 0.5, share, 0.3 * share),
            np.minimum(1, 2.5 * share),
            np.minimum(1, 6 * share),
        ]
    )


def _harm(ctx: Context, latency: FloatArray, errors: FloatArray, family: str) -> Harm:
    own = Symptom(latency, errors, family)
    return Harm(ctx.trigger, own, own)


def _throws(ctx: Context) -> Harm:
    rng, severity = ctx.rng, ctx.defect.severity
    rate = rng.uniform(0.05, 0.6) * severity
    change = np.array([[rng.uniform(-0.3, 0.05)], [rng.uniform(-0.1, 0.3)], [rng.uniform(0, 0.8)]])
    shift = ctx.typical() * change
    for pod in ctx.new_pods():
        act = ctx.active(pod.name)
        ctx.effects.add_errors(pod.name, act * rate * noise(rng, ctx.n, 0.15))
        ctx.effects.add_latency(pod.name, shift * act)
    share = ctx.new_share()
    return _harm(ctx, shift * mix(share), share * rate, "exception")


def _wrong_values(ctx: Context) -> Harm:
    """The answers are wrong, not failed: the service's own series stay clean, and callers
    fail on what they got back."""
    wrong = ctx.new_share() * ctx.rng.uniform(0.1, 0.6) * ctx.defect.severity
    clean = Symptom(np.zeros((3, ctx.n)), np.zeros(ctx.n), "regression")
    return Harm(ctx.trigger, Symptom(np.zeros((3, ctx.n)), wrong, "regression"), clean)


def _slow_queries(ctx: Context) -> Harm:
    """A query without its index: requests wait on the database, which works harder."""
    rng, severity = ctx.rng, ctx.defect.severity
    added = ctx.typical()[2] * rng.uniform(0.6, 3.0) * max(severity, 0.4)  # about the p99
    rows = np.array([[rng.uniform(0.3, 1.0)], [rng.uniform(0.7, 1.0)], [1.0]]) * added
    for pod in ctx.new_pods():
        act = ctx.active(pod.name)
        ctx.effects.add_latency(pod.name, rows * act * noise(rng, ctx.n, 0.1))
        pod.cpu = pod.cpu * (1 - act * rng.uniform(0.05, 0.3))
    share = ctx.new_share()
    series = ctx.telemetry.services[ctx.rollout.service]
    if series.pool_in_use is not None and series.pool_pending is not None:
        room = series.pool_size - series.pool_in_use
        series.pool_in_use = np.round(series.pool_in_use + room * share * rng.uniform(0.4, 1.0))
        series.pool_pending = np.round(series.pool_pending + share * rng.uniform(0, 25) * severity)
    for store in ctx.graph.callees(ctx.rollout.service):
        if ctx.graph.by_name[store].is_datastore:
            for pod in ctx.telemetry.services[store].pods:
                busier = pod.cpu * (1 + share * rng.uniform(0.3, 1.5) * severity)
                pod.cpu = np.minimum(busier, pod.cpu_limit)
            break
    errors = share * rng.uniform(0, 0.03) * severity  # the odd client timeout
    for pod in ctx.new_pods():
        ctx.effects.add_errors(pod.name, ctx.active(pod.name) * float(errors.max(initial=0.0)))
    return _harm(ctx, rows * mix(share), errors, "server_timeout")


def _memory_leak(ctx: Context) -> Harm:
    """Each new pod leaks from its start: memory climbs to the limit, the container is
    OOM-killed, restarts, and climbs again; GC pauses near the limit slow requests."""
    rng, n = ctx.rng, ctx.n
    errors, pressure = np.zeros(n), np.zeros(n)
    # Samples to the limit: sooner for a worse leak, and within the window (someone paged).
    room = ctx.n - ctx.rollout.start
    ramp = min(rng.uniform(8, 60) / max(ctx.defect.severity, 0.3), room * rng.uniform(0.3, 0.7))
    for pod in ctx.new_pods():
        start = int(np.argmax(pod.alive))
        level = float(np.nanmedian(pod.memory[start : start + 5]))
        floor, step = level, (pod.memory_limit - level) / ramp
        crashes, heat = np.zeros(n), np.zeros(n)
        for i in range(start, n):
            level += step * rng.uniform(0.7, 1.3)
            if level >= pod.memory_limit:
                level = floor * rng.uniform(0.5, 0.7)
                pod.restarts[i:] += 1
                crashes[i] = 1.0
            pod.memory[i] = level * (1 + rng.normal(0, 0.004))
            heat[i] = np.clip((level / pod.memory_limit - 0.8) / 0.2, 0, 1)
        failing = (crashes + 0.4 * np.concatenate([[0.0], crashes[:-1]])) * rng.uniform(0.2, 0.6)
        ctx.effects.add_errors(pod.name, failing + heat * 0.02)
        pause = ctx.typical() * (heat * rng.uniform(0.5, 3.0) + crashes * rng.uniform(1.0, 3.0))
        ctx.effects.add_latency(pod.name, pause)
        pod.cpu = np.minimum(pod.cpu * (1 + 0.5 * heat), pod.cpu_limit)  # the GC works
        share = ctx.split.shares[ctx.split.pods.index(pod.name)]
        errors += share * (failing + heat * 0.02)
        pressure = np.maximum(pressure, heat * share)
    latency = ctx.typical() * mix(pressure) * rng.uniform(0.5, 3.0)
    return _harm(ctx, latency, errors, "oom")


def _scale_down(ctx: Context) -> Harm:
    """Fewer replicas for the same traffic: each pod's utilisation rises past the knee, and
    queueing multiplies latency; past saturation requests time out. (CPU already follows
    each pod's share of the requests.)"""
    rng = ctx.rng
    before, after = ctx.rollout.replicas
    busy = rng.uniform(0.88, 0.985)  # the busiest a pod gets, of its capacity
    idle = busy * after / before  # what the pods ran at before
    errors, slowdown = np.zeros(ctx.n), np.zeros(ctx.n)
    for pod, share in zip(ctx.split.pods, ctx.split.shares, strict=True):
        rho = np.minimum(idle * share * before, 0.985)
        factor = np.minimum(((1 - idle) / (1 - rho)) ** rng.uniform(1.0, 1.3), 20.0)
        factor = np.where(share > 0, np.maximum(factor, 1.0), 1.0)
        ctx.effects.slow(pod, factor)
        failing = np.clip((rho - 0.93) * rng.uniform(2, 6), 0, 0.5)
        ctx.effects.add_errors(pod, failing)
        errors += share * failing
        slowdown = np.maximum(slowdown, (factor - 1) * share)
    latency = ctx.typical() * mix(np.minimum(slowdown, 1.0)) * 4
    return _harm(ctx, latency, errors, "server_timeout")


def _bad_config(ctx: Context) -> Harm:
    """A wrong setting (a URL, a secret, a flag): most requests fail from the new pods'
    first sample, quickly; sometimes the liveness probe restarts them over and over."""
    rng, severity = ctx.rng, ctx.defect.severity
    rate = rng.uniform(0.3, 1.0) * max(severity, 0.6)
    faster = rng.uniform(0.3, 0.8)
    crash_loop = rng.random() < 0.3
    for pod in ctx.new_pods():
        act = ctx.active(pod.name)
        ctx.effects.add_errors(pod.name, act * rate * noise(rng, ctx.n, 0.1))
        ctx.effects.slow(pod.name, 1 - act * (1 - faster) * rate)
        pod.cpu = pod.cpu * (1 - act * rng.uniform(0.3, 0.7))
        if crash_loop:
            start = int(np.argmax(pod.alive))
            ticks = np.zeros(ctx.n)
            ticks[start + 1 :: int(rng.integers(2, 6))] = 1.0
            pod.restarts += np.cumsum(ticks)
    share = ctx.new_share()
    return _harm(ctx, ctx.typical() * mix(share) * (faster - 1) * rate, share * rate, "exception")


def _missing_call(ctx: Context) -> Harm:
    """The new build skips a call: its callee (and what only that callee calls) loses the
    requests this service sent it, and the service itself does a little less work."""
    rng = ctx.rng
    callee = ctx.defect.callee
    assert callee is not None
    share = ctx.new_share()
    owned = rng.uniform(0.6, 1.0) / len(ctx.graph.callers(callee))
    dropped = {callee: share * owned}
    frontier = [callee]
    while frontier:
        current = frontier.pop(0)
        for below in ctx.graph.callees(current):
            lost = dropped[current] * rng.uniform(0.5, 1.0) / len(ctx.graph.callers(below))
            if below not in dropped and float(lost.max(initial=0.0)) > 0.05:
                dropped[below] = lost
                frontier.append(below)
    lighter = ctx.typical() * np.array([[rng.uniform(-0.3, -0.05)], [rng.uniform(-0.2, 0)], [0]])
    for pod in ctx.new_pods():
        act = ctx.active(pod.name)
        ctx.effects.add_latency(pod.name, lighter * act)
        pod.cpu = pod.cpu * (1 - act * rng.uniform(0.0, 0.15))
    quiet = Symptom(lighter * mix(share), np.zeros(ctx.n), "regression")
    harm = Harm(ctx.trigger, Symptom(np.zeros((3, ctx.n)), np.zeros(ctx.n), "regression"), quiet)
    harm.dropped = dropped
    return harm


_INJECTORS = {
    DefectKind.THROWS: _throws,
    DefectKind.WRONG_VALUES: _wrong_values,
    DefectKind.SLOW_QUERIES: _slow_queries,
    DefectKind.MEMORY_LEAK: _memory_leak,
    DefectKind.SCALE_DOWN: _scale_down,
    DefectKind.BAD_CONFIG: _bad_config,
    DefectKind.MISSING_CALL: _missing_call,
}


def ship(ctx: Context) -> Harm:
    """Apply the defect to the new pods (``ctx.effects``, their resource series)."""
    harm = _INJECTORS[ctx.defect.kind](ctx)
    if ctx.defect.kind in (DefectKind.MEMORY_LEAK, DefectKind.BAD_CONFIG):
        harm.onset = min(s.start for s in ctx.rollout.swaps)
    return harm


def drop_traffic(telemetry: Telemetry, dropped: dict[str, FloatArray]) -> None:
    """Services that lost requests: fewer requests, and their pods' CPU follows."""
    for name, lost in dropped.items():
        series = telemetry.services[name]
        kept = 1 - np.clip(lost, 0, 0.98)
        series.rps = series.rps * kept
        for pod in series.pods:
            pod.cpu = pod.cpu * (0.3 + 0.7 * kept)
