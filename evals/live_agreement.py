"""How closely does live analysis (real Prometheus) agree with analysis of the snapshot?

Both paths run the same engine on the same simulated incident. The scenarios compared are
those the simulator writes as ``rca record`` records a live collection
(``evals/simulator/recorded.py``): the default catalog's signals, with the values PromQL
computes from the raw export (``irate`` over the query plan's window, ``histogram_quantile``
inside the export's buckets, gauges gone stale at missed scrapes and with their pods). The
live half backfills the raw export into one real Prometheus and collects the same window
with the connector. Agreement short of 1.0 means the emulation and the server part ways
somewhere: compare the collected signals with the snapshot's, series by series.

Example::

    python -m evals.live_agreement --seeds 18000-18199 --json out/live_agreement.json
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

from agent.engine.pipeline import analyze
from agent.errors import RcaError
from agent.models import Analysis
from connectors.collect import Collected, Scope, collect_live
from connectors.prometheus import PrometheusSource
from connectors.settings import CollectSettings, PrometheusSettings
from evals.bench_sources import serve
from evals.runner import parse_seed_range
from evals.simulator import Scenario, simulate
from evals.snapshot_sources import SnapshotLogs


def overlapping(scenarios: Iterable[Scenario]) -> list[tuple[int, int]]:
    """Pairs of seeds whose series would mix in one TSDB (same namespace, overlapping time)."""
    spans = [
        (s.seed, s.graph.namespace, s.telemetry.timeline.start, s.telemetry.timeline.end)
        for s in scenarios
    ]
    return [
        (a[0], b[0])
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
        if a[1] == b[1] and a[2] <= b[3] and b[2] <= a[3]
    ]


def same_quantities(scenario: Scenario) -> bool:
    """Whether the snapshot holds what a live collection returns (the default catalog's
    signals, computed as PromQL computes them: ``evals/simulator/recorded.py``)."""
    return scenario.naming.recorded


def analyze_both(scenario: Scenario, prometheus_url: str) -> tuple[Analysis, Analysis, Collected]:
    """The snapshot's analysis, and the live one over the same window from ``prometheus_url``."""
    snapshot = scenario.snapshot.model_copy(update={"ground_truth": None})
    offline = analyze(snapshot)
    timeline = scenario.telemetry.timeline
    start = datetime.fromtimestamp(timeline.start, UTC)
    incident_start = offline.window.incident_start
    scope = Scope((), incident_start, datetime.fromtimestamp(timeline.end, UTC), snapshot.alert)
    baseline = CollectSettings(baseline_minutes=(incident_start - start).total_seconds() / 60)
    source = PrometheusSource(prometheus_url, PrometheusSettings())
    collected = collect_live(scope, source, SnapshotLogs(snapshot.logs, by_service=False), baseline)
    return offline, analyze(collected.snapshot, source_failures=collected.failures), collected


@dataclass(frozen=True)
class Agreement:
    """How two analyses of one incident compare, and how each did against the truth."""

    seed: int
    fault: str
    same_root_cause: bool  # top candidate's service
    same_fault_type: bool  # and its fault hypothesis
    same_top3: bool  # the same set of three services
    top3_shared: int
    snapshot_right: bool  # top candidate is the true root-cause service
    live_right: bool


def compare(scenario: Scenario, offline: Analysis, live: Analysis) -> Agreement:
    def top(a: Analysis, n: int) -> list[str]:
        return [c.service for c in a.candidates[:n]]

    def root(a: Analysis) -> tuple[str, str] | None:
        return (a.candidates[0].service, a.candidates[0].fault_type) if a.candidates else None

    truth = scenario.plan.service
    return Agreement(
        seed=scenario.seed,
        fault=scenario.plan.fault.value,
        same_root_cause=bool(offline.candidates) and top(offline, 1) == top(live, 1),
        same_fault_type=root(offline) is not None and root(offline) == root(live),
        same_top3=set(top(offline, 3)) == set(top(live, 3)),
        top3_shared=len(set(top(offline, 3)) & set(top(live, 3))),
        snapshot_right=top(offline, 1) == [truth],
        live_right=top(live, 1) == [truth],
    )


def comparable_scenarios(seeds: range) -> list[Scenario]:
    """The seeds' scenarios that describe the same quantities both ways and fit one TSDB."""
    chosen: list[Scenario] = []
    for seed in seeds:
        scenario = simulate(seed)
        if same_quantities(scenario) and not overlapping([*chosen, scenario]):
            chosen.append(scenario)
    return chosen


def summarize(results: list[Agreement]) -> dict[str, float | int]:
    n = len(results)

    def share(holds: Callable[[Agreement], bool]) -> float:
        return round(sum(holds(r) for r in results) / n, 3) if n else 0.0

    return {
        "n": n,
        "same_root_cause": share(lambda r: r.same_root_cause),
        "same_fault_type": share(lambda r: r.same_fault_type),
        "same_top3": share(lambda r: r.same_top3),
        "top3_shared_2_or_more": share(lambda r: r.top3_shared >= 2),
        "snapshot_ac_at_1": share(lambda r: r.snapshot_right),
        "live_ac_at_1": share(lambda r: r.live_right),
    }


@click.command()
@click.option("--seeds", required=True, help="Seed range A-B; the recorded-as-live ones are used.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def main(seeds: str, json_out: Path | None) -> None:
    """Compare live and snapshot analyses over a seed range."""
    console = Console(stderr=True)
    try:
        seed_range = parse_seed_range(seeds)
    except RcaError as err:
        raise click.BadParameter(str(err), param_hint="--seeds") from None
    scenarios = comparable_scenarios(seed_range)
    if not scenarios:
        raise click.UsageError(f"no scenario recorded as a live collection in seeds {seeds}")
    results = []
    with tempfile.TemporaryDirectory(prefix="rca-live-agreement-") as tmp:
        with console.status(f"backfilling {len(scenarios)} incidents and starting prometheus"):
            process, url = serve(scenarios, Path(tmp))
        try:
            for scenario in scenarios:
                offline, live, collected = analyze_both(scenario, url)
                if collected.failures:
                    raise click.ClickException(f"seed {scenario.seed}: {collected.failures}")
                r = compare(scenario, offline, live)
                results.append(r)
                console.print(
                    f"seed {r.seed} {r.fault}: same root cause {r.same_root_cause}, "
                    f"top-3 shared {r.top3_shared}, right: snapshot {r.snapshot_right}, "
                    f"live {r.live_right}",
                    highlight=False,
                )
        finally:
            process.terminate()
            process.wait(timeout=10)
    report = {"seeds": seeds, "metrics": summarize(results), "cases": [asdict(r) for r in results]}
    click.echo(json.dumps(report["metrics"], indent=2))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
