"""Incident simulator: realistic, seeded incidents as snapshots with ground truth.

``simulate(seed)`` builds one incident (topology, metrics in one of several naming dialects,
logs, the alert that fired, the ground truth); ``write_scenario`` writes it as a snapshot
directory, optionally with raw OpenMetrics and ECS log exports. See ``docs/simulator.md``.
"""

from evals.simulator.scenario import Scenario, simulate, write_scenario

__all__ = ["Scenario", "simulate", "write_scenario"]
