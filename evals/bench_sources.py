"""Benchmark recording and analysing an incident from a local Prometheus.

The incident: a simulated 50-service random graph over about two hours (the first seed whose
timeline is 2 h +/- 5 % at ``--resolution``, 15 s by default), backfilled with promtool into a
fresh TSDB served by the local ``prometheus`` binary, the same way ``rca simulate
--load-prometheus`` loads it. Timed, per
run: ``rca record`` (collect every catalog signal and the call graph over the window, write
the snapshot) plus ``analyze`` of what was collected; best and median of ``--runs`` runs after
one warm-up. Peak RSS of this process is reported too (Linux ``VmHWM``). Example::

    python -m evals.bench_sources --json out/bench_sources.json
    python -m evals.bench_sources --url http://localhost:9090 --seed 7   # already loaded
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import click
import httpx
import numpy as np
from rich.console import Console

from agent.config import EngineSettings
from agent.engine.pipeline import analyze
from agent.snapshot import write_snapshot
from connectors.collect import Scope, collect_live
from connectors.prometheus import PrometheusSource
from connectors.settings import CollectSettings, PrometheusSettings
from evals.simulator import Scenario, simulate
from evals.simulator.scenario import build_graph, choose_timeline

SERVICES = 50
TWO_HOURS_S = 7200.0


def two_hour_seed(resolution: int, services: int = SERVICES) -> int:
    """The first seed whose timeline spans 2 h +/- 5 % at ``resolution`` (draws only, cheap)."""
    for seed in range(100_000):
        rng = np.random.default_rng(seed)
        build_graph(rng, services)
        timeline = choose_timeline(rng)
        span = timeline.end - timeline.start
        if timeline.resolution == resolution and abs(span - TWO_HOURS_S) <= 0.05 * TWO_HOURS_S:
            return seed
    raise RuntimeError("no two-hour timeline in 100,000 seeds")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def backfill_scenarios(scenarios: Iterable[Scenario], data_dir: Path) -> Path:
    """Every scenario's metrics and call graph, as ``rca simulate --load-prometheus`` loads them."""
    from agent.cli_sources import scenario_openmetrics
    from connectors.promtool import backfill

    with tempfile.TemporaryDirectory(prefix="rca-om-") as tmp:
        for scenario in scenarios:
            backfill(scenario_openmetrics(scenario, Path(tmp) / f"{scenario.seed}.om"), data_dir)
    return data_dir


def serve(scenarios: Iterable[Scenario], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Backfill the scenarios into ``workdir`` and start Prometheus on them; returns the URL."""
    data = backfill_scenarios(scenarios, workdir / "tsdb")
    (workdir / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\n")
    port = _free_port()
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("prometheus did not become ready")


def record_and_analyze(url: str, scenario: Scenario, out: Path) -> dict[str, float]:
    """One timed run: collect the window, write the snapshot, analyse it."""
    timeline = scenario.telemetry.timeline
    start = datetime.fromtimestamp(timeline.start, UTC)
    end = datetime.fromtimestamp(timeline.end, UTC)
    incident_start = start + (end - start) * 0.75
    baseline = CollectSettings(baseline_minutes=(incident_start - start).total_seconds() / 60)
    clock = time.perf_counter()
    source = PrometheusSource(url, PrometheusSettings())
    collected = collect_live(
        Scope((), incident_start, end, scenario.snapshot.alert), source, None, baseline
    )
    collect_s = time.perf_counter() - clock
    write_snapshot(collected.snapshot, out)
    record_s = time.perf_counter() - clock
    analysis = analyze(collected.snapshot, EngineSettings(), source_failures=collected.failures)
    total_s = time.perf_counter() - clock
    if collected.failures:
        raise RuntimeError(f"source failures: {collected.failures}")
    return {
        "collect_s": collect_s,
        "record_s": record_s,
        "total_s": total_s,
        "series": float(len(collected.snapshot.signals)),
        "points": float(sum(len(s.timestamps) for s in collected.snapshot.signals)),
        "candidates": float(len(analysis.candidates)),
    }


def peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@click.command()
@click.option("--url", help="Use this Prometheus (already holding --seed) instead of starting one.")
@click.option("--seed", type=int, help="Simulator seed (default: the first 2-hour timeline).")
@click.option(
    "--resolution",
    type=click.Choice(["5", "10", "15", "30", "60"]),
    default="15",
    show_default=True,
    help="Scrape interval of the chosen incident, in seconds.",
)
@click.option("--runs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def main(
    url: str | None, seed: int | None, resolution: str, runs: int, json_out: Path | None
) -> None:
    """Time `rca record` + analyze of a 50-service, 2-hour incident from a local Prometheus."""
    console = Console(stderr=True)
    chosen = seed if seed is not None else two_hour_seed(int(resolution))
    scenario = simulate(chosen, services=SERVICES)
    timeline = scenario.telemetry.timeline
    with tempfile.TemporaryDirectory(prefix="rca-bench-sources-") as tmp:
        work = Path(tmp)
        process = None
        if url is None:
            with console.status("backfilling and starting prometheus"):
                process, url = serve([scenario], work)
        try:
            record_and_analyze(url, scenario, work / "warmup")
            results = [record_and_analyze(url, scenario, work / f"run{i}") for i in range(runs)]
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
    totals = [r["total_s"] for r in results]
    report = {
        "seed": chosen,
        "services": len(scenario.graph.services),
        "resolution_s": timeline.resolution,
        "window_s": timeline.end - timeline.start,
        "series": results[0]["series"],
        "points": results[0]["points"],
        "runs": runs,
        "best_s": round(min(totals), 3),
        "median_s": round(statistics.median(totals), 3),
        "median_collect_s": round(statistics.median(r["collect_s"] for r in results), 3),
        "median_record_s": round(statistics.median(r["record_s"] for r in results), 3),
        "peak_rss_mb": peak_rss_mb(),
    }
    click.echo(json.dumps(report, indent=2))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
