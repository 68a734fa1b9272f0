"""Incident simulator: realistic, seeded incidents as snapshots with ground truth.

``simulate(seed)`` builds one incident (topology, metrics in one of several naming dialects,
logs, the alert that fired, the ground truth); ``simulate_rollout(seed)`` builds one from the
rollout family (several Deployments rolling out pod by pod, one of them maybe defective);
``write_scenario`` writes either as a snapshot directory, optionally with raw OpenMetrics and
ECS log exports. See ``docs/simulator.md``.
"""

from evals.simulator.rollout_scenario import simulate_rollout
from evals.simulator.scenario import Scenario, simulate, write_scenario

__all__ = ["Scenario", "simulate", "simulate_rollout", "write_scenario"]
