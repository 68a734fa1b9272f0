"""Benchmark ``analyze()`` on synthetic incidents of growing size.

Each incident: N services x 12 series x 2 h at 15 s resolution (480 points per series), 1,000
templated log lines per service, a binary call tree, and one injected CPU saturation whose
onset is 100 minutes in. Snapshots are built in memory; only ``analyze()`` is timed (best of 3
after one warm-up; a single run at 1,000 services and above). Memory is measured in a separate
run under ``tracemalloc`` (Python allocations, peak above the start) alongside the peak RSS
above the RSS before the call (Linux: ``/proc/self/status`` with ``clear_refs`` resetting the
high-water mark), because tracemalloc slows allocation-heavy code and would skew the timing.
Example::

    python -m evals.bench --services 10,100,1000 --json out/bench.json
"""

from __future__ import annotations

import json
import platform
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import numpy as np
from pydantic import BaseModel
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.config import EngineSettings
from agent.engine.pipeline import analyze
from agent.models import Edge, LogRecord, Signal, SignalKind, Topology
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec

STEP_S = 15
DURATION = timedelta(hours=2)
ONSET_AFTER = timedelta(minutes=100)
INCIDENT_AFTER = timedelta(minutes=98)
LOG_LINES_PER_SERVICE = 1000
START = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)

# name, kind, unit, typical level, relative noise
SERIES: tuple[tuple[str, SignalKind, str, float, float], ...] = (
    ("cpu_usage_cores", SignalKind.RESOURCE, "cores", 0.4, 0.08),
    ("memory_working_set_bytes", SignalKind.RESOURCE, "bytes", 512 * 2**20, 0.01),
    ("gc_pause_seconds", SignalKind.RESOURCE, "seconds", 0.004, 0.2),
    ("http_requests_per_second", SignalKind.TRAFFIC, "1/s", 120.0, 0.05),
    ("http_errors_per_second", SignalKind.ERRORS, "1/s", 0.2, 0.5),
    ("http_latency_p50_seconds", SignalKind.LATENCY, "seconds", 0.02, 0.05),
    ("http_latency_p99_seconds", SignalKind.LATENCY, "seconds", 0.12, 0.08),
    ("db_pool_active_connections", SignalKind.SATURATION, "", 6.0, 0.15),
    ("threads_busy", SignalKind.SATURATION, "", 12.0, 0.1),
    ("disk_used_ratio", SignalKind.SATURATION, "ratio", 0.42, 0.001),
    ("network_transmit_bytes_per_second", SignalKind.TRAFFIC, "bytes", 2e6, 0.05),
    ("container_restarts", SignalKind.CHANGE, "", 0.0, 0.0),
)
_FAULT_EFFECT = {"cpu_usage_cores": 4.0, "http_latency_p99_seconds": 6.0, "threads_busy": 3.0}
_CALLER_EFFECT = {"http_latency_p99_seconds": 2.0, "http_errors_per_second": 8.0}

_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("INFO", "GET /api/v1/{res}/{id} 200 {ms}ms user={user}"),
    ("INFO", "POST /api/v1/{res} 201 {ms}ms user={user}"),
    ("INFO", "processed batch id={id} items={n} in {ms} ms"),
    ("DEBUG", "cache hit ratio={ratio} for key={res}:{id}"),
    ("INFO", "connection from 10.{a}.{b}.{c}:{port} accepted"),
    ("WARN", "slow query on table {res}: {ms} ms (rows={n})"),
)
_FAULT_LOG = "request to {res} timed out after {ms} ms (attempt {n}/3, thread pool saturated)"
_RESOURCES = ("orders", "carts", "users", "payments", "items", "sessions", "quotes", "stock")


class BenchResult(BaseModel):
    services: int
    series: int
    points: int
    log_lines: int
    build_s: float
    analyze_runs_s: list[float]
    analyze_best_s: float
    tracemalloc_peak_mib: float
    rss_delta_mib: float | None
    fault_service: str
    top_candidate: str | None


def _service_name(index: int) -> str:
    return f"svc-{index:04d}"


def _topology(n: int) -> Topology:
    edges = [
        Edge(caller=_service_name(i), callee=_service_name(c))
        for i in range(n)
        for c in (2 * i + 1, 2 * i + 2)
        if c < n
    ]
    return Topology(services=[_service_name(i) for i in range(n)], edges=edges)


def _series(
    rng: np.random.Generator, service: str, stamps: list[float], factor: dict[str, float]
) -> list[Signal]:
    onset_i = int(ONSET_AFTER.total_seconds() // STEP_S)
    out = []
    for name, kind, unit, level, noise in SERIES:
        values = level * (1 + noise * rng.standard_normal(len(stamps)))
        values[onset_i:] *= factor.get(name, 1.0)
        out.append(
            Signal.model_construct(
                service=service, name=name, kind=kind, unit=unit, pod=None, resolution_s=STEP_S,
                timestamps=stamps.copy(), values=np.abs(values).tolist(), labels={}, origin="bench",
                link=None,
            )
        )  # fmt: skip
    return out


def _logs(rng: np.random.Generator, service: str, faulty: bool) -> list[LogRecord]:
    seconds = np.sort(rng.uniform(0, DURATION.total_seconds(), LOG_LINES_PER_SERVICE))
    records = []
    for k, offset in enumerate(seconds):
        at = START + timedelta(seconds=float(offset))
        if faulty and at >= START + ONSET_AFTER and k % 3 == 0:
            level, template = "ERROR", _FAULT_LOG
        else:
            level, template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
        message = template.format(
            res=_RESOURCES[k % len(_RESOURCES)], id=int(rng.integers(1, 10**6)),
            ms=int(rng.gamma(2.0, 15.0)) + (3000 if level == "ERROR" else 0),
            user=f"u{int(rng.integers(10**5))}", n=int(rng.integers(1, 500)),
            ratio=f"{rng.uniform(0.6, 0.99):.2f}", a=k % 250, b=(k * 7) % 250, c=(k * 13) % 250,
            port=int(rng.integers(1024, 65535)),
        )  # fmt: skip
        records.append(
            LogRecord.model_construct(
                timestamp=at, service=service, level=level, message=message, pod=None,
                trace_id=None, fields={},
            )
        )  # fmt: skip
    return records


def build_snapshot(services: int, seed: int = 0) -> tuple[Snapshot, str]:
    """A synthetic incident with ``services`` services; returns it and the faulty service."""
    rng = np.random.default_rng(seed)
    topology = _topology(services)
    fault = _service_name(int(rng.integers(services // 2, services)) if services > 1 else 0)
    callers = set(topology.callers(fault))
    base = START.timestamp()
    stamps = [base + i * STEP_S for i in range(int(DURATION.total_seconds() // STEP_S))]
    signals: list[Signal] = []
    logs: list[LogRecord] = []
    for i in range(services):
        name = _service_name(i)
        effect = _FAULT_EFFECT if name == fault else _CALLER_EFFECT if name in callers else {}
        signals.extend(_series(rng, name, stamps, effect))
        logs.extend(_logs(rng, name, faulty=name == fault))
    logs.sort(key=lambda r: r.timestamp)
    meta = SnapshotMeta(
        id=f"bench-{services}",
        source="evals.bench",
        window=WindowSpec(incident_start=START + INCIDENT_AFTER),
    )
    snapshot = Snapshot(meta=meta, signals=signals, logs=logs, topology=topology)
    return snapshot, fault


def _read_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure_memory(run: Callable[[], object]) -> tuple[float, float | None]:
    """(tracemalloc peak MiB, peak-RSS-above-start MiB or None where not measurable)."""
    rss_before = _read_status_kib("VmRSS")
    can_reset = _reset_peak_rss()
    tracemalloc.start()
    try:
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    hwm = _read_status_kib("VmHWM")
    rss_delta = (hwm - rss_before) / 1024 if can_reset and hwm and rss_before else None
    return peak / 2**20, rss_delta


def bench_one(services: int, progress: Progress) -> BenchResult:
    task = progress.add_task(f"{services} services: building", total=None)
    started = time.perf_counter()
    snapshot, fault = build_snapshot(services)
    build_s = time.perf_counter() - started
    engine = EngineSettings()
    runs = 1 if services >= 1000 else 3
    if runs > 1:
        progress.update(task, description=f"{services} services: warm-up")
        analyze(snapshot, engine)
    timings = []
    analysis = None
    for k in range(runs):
        progress.update(task, description=f"{services} services: run {k + 1}/{runs}")
        t0 = time.perf_counter()
        analysis = analyze(snapshot, engine)
        timings.append(time.perf_counter() - t0)
    progress.update(task, description=f"{services} services: memory")
    peak, rss = measure_memory(lambda: analyze(snapshot, engine))
    progress.remove_task(task)
    top = analysis.candidates[0].service if analysis and analysis.candidates else None
    return BenchResult(
        services=services, series=len(snapshot.signals),
        points=sum(len(s.timestamps) for s in snapshot.signals), log_lines=len(snapshot.logs),
        build_s=build_s, analyze_runs_s=timings, analyze_best_s=min(timings),
        tracemalloc_peak_mib=peak, rss_delta_mib=rss, fault_service=fault, top_candidate=top,
    )  # fmt: skip


def results_table(results: list[BenchResult]) -> Table:
    table = Table(title="analyze() benchmark", title_justify="left")
    for name in ("services", "series", "points", "logs", "time s", "py MiB", "RSS MiB"):
        table.add_column(name, justify="right")
    table.add_column("found")
    for r in results:
        rss = f"{r.rss_delta_mib:,.1f}" if r.rss_delta_mib is not None else "n/a"
        table.add_row(
            f"{r.services:,}", f"{r.series:,}", f"{r.points:,}", f"{r.log_lines:,}",
            f"{r.analyze_best_s:.2f}", f"{r.tracemalloc_peak_mib:,.1f}", rss,
            "yes" if r.top_candidate == r.fault_service else f"no ({r.top_candidate})",
        )  # fmt: skip
    return table


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected numbers like 10,100,1000, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("service counts must be positive")
    return sizes


@click.command()
@click.option("--services", "sizes", default="10,100,1000", show_default=True,
              help="Comma-separated service counts.")  # fmt: skip
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write results as JSON.")  # fmt: skip
def main(sizes: str, json_file: Path | None) -> None:
    """Time analyze() on synthetic incidents of growing size."""
    console = Console(stderr=True)
    results = []
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for n in _sizes(sizes):
            results.append(bench_one(n, progress))
    out = Console()
    if not out.is_terminal:
        out.width = 100  # files and pipes get the whole table, not an 80-column cut
    out.print(results_table(results))
    if json_file is not None:
        payload = {
            "machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "processor": platform.machine()},
            "method": __doc__.split("Example::")[0].strip() if __doc__ else "",
            "results": [r.model_dump() for r in results],
        }  # fmt: skip
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_file}")


if __name__ == "__main__":
    main()
