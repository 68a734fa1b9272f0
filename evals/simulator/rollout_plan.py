"""Which Deployments roll out when, and which one (if any) ships a defect.

With a defective rollout, 0 to 5 other Deployments roll out healthily within 4 minutes of
it; with innocent rollouts (the fault is elsewhere), 1 to 5 start from 8 minutes before the
fault's onset to 2 minutes after it. A defect goes only where it makes sense: wrong values
need a caller to fail on them, a scale-down needs two replicas to lose one, a missing call
needs a callee that mostly this service calls.
"""

from __future__ import annotations

import numpy as np

from agent.models import FaultType
from evals.simulator.defects import DELAYABLE, Defect, DefectKind, RolloutPlan
from evals.simulator.plan import FaultPlan, eligible, plan_fault
from evals.simulator.rollouts import Rollout, roll
from evals.simulator.telemetry import Telemetry
from evals.simulator.topology import ServiceGraph, ServiceSpec

DELAYED_SHARE = 0.25
HEALTHY_COUNTS = (0.15, 0.25, 0.2, 0.15, 0.15, 0.1)  # P(0), ..., P(5) healthy rollouts


def _missing_callee(graph: ServiceGraph, spec: ServiceSpec) -> list[str]:
    """Callees whose traffic visibly drops when ``spec`` stops calling them."""
    own = [c for c in graph.callees(spec.name) if graph.by_name[c].pods]
    return [c for c in own if len(graph.callers(c)) <= 2]


def _candidates(graph: ServiceGraph, kind: DefectKind) -> list[ServiceSpec]:
    apps = [s for s in graph.services if s.is_app and s.pods]
    if kind is DefectKind.WRONG_VALUES:
        return [s for s in apps if graph.callers(s.name)]
    if kind is DefectKind.SCALE_DOWN:
        return [s for s in apps if len(s.pods) >= 2]
    if kind is DefectKind.MISSING_CALL:
        return [s for s in apps if _missing_callee(graph, s)]
    return apps


def _pick(rng: np.random.Generator, items: list[ServiceSpec]) -> ServiceSpec:
    return items[int(rng.integers(len(items)))]


def _defect(
    graph: ServiceGraph, kind: DefectKind, n: int, rng: np.random.Generator
) -> tuple[ServiceSpec, Defect, int]:
    """The defective service, its defect, and when its rollout starts."""
    if not _candidates(graph, kind):
        kind = DefectKind.THROWS  # the graph has no place for this defect
    spec = _pick(rng, _candidates(graph, kind))
    start = int(n * rng.uniform(0.6, 0.85))
    delay = 0
    if kind in DELAYABLE and rng.random() < DELAYED_SHARE:
        # Minutes after the rollout ended, leaving the incident a dozen samples to show.
        delay = min(int(rng.integers(3, 26)), n - start - 24)
        delay = delay if delay >= 3 else 0
    callee = None
    if kind is DefectKind.MISSING_CALL:
        options = _missing_callee(graph, spec)
        callee = options[int(rng.integers(len(options)))]
    return spec, Defect(kind, float(rng.uniform(0.3, 1.0)), delay, callee), start


def _healthy(
    telemetry: Telemetry,
    graph: ServiceGraph,
    taken: set[str],
    count: int,
    around: int,
    spread: tuple[int, int],
    rng: np.random.Generator,
) -> list[Rollout]:
    """``count`` healthy rollouts of other Deployments, starting around sample ``around``."""
    free = [s for s in graph.services if s.is_app and s.pods and s.name not in taken]
    picks: list[int] = []
    if free:
        picks = sorted(int(i) for i in rng.choice(len(free), min(count, len(free)), replace=False))
    n = telemetry.timeline.length
    rollouts = []
    for index in picks:
        start = int(np.clip(around + rng.integers(spread[0], spread[1] + 1), 1, n - 6))
        rollouts.append(roll(telemetry, free[index], start, rng))
    return rollouts


def plan_rollouts(
    telemetry: Telemetry,
    graph: ServiceGraph,
    kind: DefectKind | None,
    fault: FaultType,
    rng: np.random.Generator,
) -> tuple[RolloutPlan, FaultPlan | None]:
    """Roll the Deployments out (``telemetry`` gets their new pods): a defective rollout of
    ``kind`` and healthy ones beside it, or healthy ones beside ``fault`` (its plan
    returned; a graph with no place for it gets a CPU saturation instead)."""
    n = telemetry.timeline.length
    count = int(rng.choice(len(HEALTHY_COUNTS), p=HEALTHY_COUNTS))
    if kind is not None:
        spec, defect, start = _defect(graph, kind, n, rng)
        before = len(spec.pods)
        fewer = None
        if defect.kind is DefectKind.SCALE_DOWN:
            fewer = max(1, min(before - 1, round(before * rng.uniform(0.3, 0.6))))
        defective = roll(telemetry, spec, start, rng, fewer)
        others = _healthy(telemetry, graph, {spec.name}, count, start, (-4, 4), rng)
        return RolloutPlan((defective, *others), defective, defect), None
    if not eligible(graph, fault):
        fault = FaultType.CPU_SATURATION
    fault_plan = plan_fault(graph, telemetry.timeline, fault, rng)
    taken = {fault_plan.service}
    rollouts = _healthy(telemetry, graph, taken, max(1, count), fault_plan.onset, (-8, 2), rng)
    return RolloutPlan(tuple(rollouts), None, None), fault_plan
