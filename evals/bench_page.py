"""Benchmark the report page: how fast ``rca serve`` answers ``GET /analyses/{id}`` for a
50-evidence analysis, and how large the page and the self-contained file are.

The analysis is real: a 50-service simulated incident (``evals.simulator``) analysed by the
engine with ``max_evidence=50``, stored as the worker stores it (the result and its chart
data, :func:`agent.service.runner.chart_material`). The service runs as a subprocess
(``rca serve``, SQLite, and PostgreSQL when ``--admin-url`` reaches one); each request is
timed by the client from sending to the last byte, over one kept-alive connection, and the
service's CPU time is read from the process (load on the machine inflates wall time, much
less CPU time). Three rows per database:

- ``page, not drawn``: ``--cold`` copies of the analysis under different ids (stored here,
  not by a worker), each opened once: the chart data is read, parsed and drawn on the
  request. The worst case: a replica other than the one that ran the analysis, a restart,
  or an analysis beyond the last 32;
- ``page, drawn``: one analysis opened ``--requests`` times: its charts come from the page
  cache, as for every view of an analysis its worker stored in this process (the worker
  draws it ahead) and every view after the first;
- ``list``: ``GET /analyses`` with those analyses in it.

Example::

    python -m evals.bench_page --requests 200 --json out/bench_page.json
    python -m evals.bench_page --requests 50 --admin-url ''   # quick, SQLite only
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from agent.config import load_settings
from agent.models import Analysis
from agent.snapshot import Snapshot
from agent.store.db import database_url, make_engine, migrate
from agent.store.intake import NewJob, enqueue
from agent.store.tables import AnalysisRow
from evals.bench_service import READER, postgres, served
from evals.simulator import simulate

EVIDENCE = 50
SEEDS = range(1, 40)
WARMUP = 5


def fifty_evidence_incident(evidence: int = EVIDENCE) -> tuple[Analysis, Snapshot]:
    """The first simulated 50-service incident whose analysis keeps ``evidence`` items."""
    from agent.engine.pipeline import analyze

    engine = load_settings().engine.model_copy(update={"max_evidence": evidence})
    for seed in SEEDS:
        snapshot = simulate(seed, services=50).snapshot
        analysis = analyze(snapshot, engine)
        if len(analysis.evidence) == evidence:
            return analysis, snapshot
    raise click.ClickException(f"no seed in {SEEDS} gives {evidence} evidence items")


def store_finished(sessions: sessionmaker, analysis: Analysis, material: Snapshot | None) -> None:
    """Store ``analysis`` as a finished job with its chart data, as a worker would."""
    now = datetime.now(UTC)
    job = NewJob(
        id=analysis.id,
        trigger=analysis.trigger,
        incident_start=analysis.window.incident_start,
        window_end=analysis.window.end,
        services=sorted({c.service for c in analysis.candidates}),
    )
    with sessions.begin() as session:
        enqueue(session, job, now)
        session.execute(
            update(AnalysisRow)
            .where(AnalysisRow.id == analysis.id)
            .values(
                status="done",
                attempts=1,
                result=analysis.model_dump_json(),
                chart_data=material.model_dump_json() if material is not None else None,
                root_service=analysis.root_cause.service if analysis.root_cause else None,
                confidence=analysis.confidence,
                started_at=now,
                finished_at=now,
            )
        )


def _seed(url: str, analysis: Analysis, material: Snapshot | None, copies: int) -> list[str]:
    """Store ``analysis`` under ``copies`` ids; returns them."""
    engine = make_engine(url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    ids = [f"{analysis.id}-{n:04d}" for n in range(copies)]
    try:
        migrate(engine)
        for analysis_id in ids:
            store_finished(sessions, analysis.model_copy(update={"id": analysis_id}), material)
    finally:
        engine.dispose()
    return ids


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _time_pages(base: str, pid: int, paths: list[str], warmup: int = WARMUP) -> dict[str, Any]:
    """Each of ``paths`` requested in turn (after ``warmup`` requests of the first)."""
    timings: list[float] = []
    size = 0
    with httpx.Client(base_url=base, headers=READER, timeout=30) as client:
        for _ in range(warmup):
            client.get(paths[0])
        cpu = _cpu_s(pid)
        for path in paths:
            began = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - began) * 1000)
            if response.status_code != 200:
                raise click.ClickException(f"GET {path}: {response.status_code} {response.text}")
            size = len(response.content)
        cpu = _cpu_s(pid) - cpu
    ms = np.array(timings)
    return {
        "requests": len(paths),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
        "cpu_ms": round(cpu * 1000 / len(paths), 1),
        "bytes": size,
    }


def _standalone(analysis: Analysis, snapshot: Snapshot, root: Path) -> dict[str, Any]:
    from agent.page.render import write_page

    began = time.perf_counter()
    path = write_page(analysis, snapshot, root / "report.html")
    return {"bytes": path.stat().st_size, "write_s": round(time.perf_counter() - began, 2)}


def run(requests: int, cold: int, admin_url: str) -> dict[str, Any]:
    from agent.service.runner import chart_material

    analysis, snapshot = fifty_evidence_incident()
    analysis = analysis.model_copy(update={"id": "an-bench-page"})
    material = chart_material(analysis, snapshot)
    results: dict[str, Any] = {
        "evidence": len(analysis.evidence),
        "log_evidence": sum(e.source == "log" for e in analysis.evidence),
        "chart_data_bytes": len(material.model_dump_json()) if material else 0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        databases: list[tuple[str, str | None]] = [("sqlite", None)]
        with postgres(admin_url) if admin_url else nullcontext() as pg:
            if pg is not None:
                databases.append(("postgresql", pg))
            for name, url in databases:
                data = root / name
                data.mkdir()
                ids = _seed(url or database_url(None, data), analysis, material, cold + 1)
                pages = [f"/analyses/{analysis_id}" for analysis_id in ids]
                with served(data, data, url) as (base, pid):
                    results[name] = {
                        "page, not drawn": _time_pages(base, pid, pages[1:], warmup=0),
                        "page, drawn": _time_pages(base, pid, [pages[0]] * requests),
                        "list": _time_pages(base, pid, ["/analyses"] * requests),
                    }
        results["standalone"] = _standalone(analysis, snapshot, root)
    return results


def _table(results: dict[str, Any]) -> Table:
    table = Table(title=f"Report page, {results['evidence']} evidence items")
    for column in ("database", "route", "p50 ms", "p95 ms", "max ms", "CPU ms", "bytes"):
        table.add_column(column, justify="left" if column in ("database", "route") else "right")
    for database in ("sqlite", "postgresql"):
        for route, row in results.get(database, {}).items():
            table.add_row(
                database,
                route,
                *(str(row[k]) for k in ("p50_ms", "p95_ms", "max_ms", "cpu_ms", "bytes")),
            )
    return table


@click.command()
@click.option("--requests", default=200, show_default=True, help="Repeated requests per route.")
@click.option(
    "--cold", default=100, show_default=True, help="Analyses each opened once (first views)."
)
@click.option(
    "--admin-url",
    default="postgresql://postgres@127.0.0.1:5432/postgres",
    show_default=True,
    help="PostgreSQL to make a scratch database on; '' for SQLite only.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def main(requests: int, cold: int, admin_url: str, json_out: Path | None) -> None:
    """Time the report page of a 50-evidence analysis served by ``rca serve``."""
    results = run(requests, cold, admin_url)
    console = Console()
    console.print(_table(results))
    standalone = results["standalone"]
    console.print(
        f"self-contained HTML (rca analyze --html): {standalone['bytes']:,} bytes, "
        f"written in {standalone['write_s']} s; chart data stored: "
        f"{results['chart_data_bytes']:,} bytes"
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
