"""Benchmark ``rca serve``: webhook-to-stored-analysis latency, sustained intake, idle RSS.

Runs the real service as a subprocess (SQLite, and PostgreSQL when ``--postgres`` reaches a
server), offline on recorded snapshots:

- latency: a 50-service simulated incident (``evals.simulator``, extractive backend);
  ``--samples`` notifications one after another, each timed from sending the webhook until
  ``GET /v1/analyses/{id}`` says ``done``; p50 and p95;
- intake: ``--rate`` notifications per second for ``--seconds`` (distinct alert groups on a
  small recorded incident); every answer must be 202, and after the run every notification
  must have a stored analysis; reports answer latency and the time to drain the queue;
- idle RSS of a freshly started ``rca serve`` (no analysis run yet, no local model).

Example::

    python -m evals.bench_service --json out/bench_service.json
    python -m evals.bench_service --samples 10 --seconds 10 --postgres ''   # quick, SQLite only
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from evals.simulator import simulate, write_scenario

TOKEN = "bench-webhook-token"
READ = "bench-read-token"
MINIMAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "snapshots" / "minimal"


WEBHOOK = {"Authorization": f"Bearer {TOKEN}"}
READER = {"Authorization": f"Bearer {READ}"}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise click.ClickException(f"rca serve did not start; see {log}")


@contextmanager
def served(
    data: Path, snapshots: Path, database: str | None, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """``rca serve`` on a free port (``extra_env`` adds settings); yields (base URL, pid)."""
    port = _port()
    env = {
        **os.environ,
        "RCA_DATA_DIR": str(data),
        "RCA_SNAPSHOT_DIR": str(snapshots),
        "RCA_WEBHOOK_TOKEN": TOKEN,
        "RCA_API_TOKENS": f"{READ}:read",
        "RCA_SERVICE__PORT": str(port),
        "RCA_SERVICE__POLL_INTERVAL_S": "0.5",
        **(extra_env or {}),
    }
    if database:
        env["RCA_DATABASE_URL"] = database
    data.mkdir(parents=True, exist_ok=True)
    log = data / "serve.log"
    command = [sys.executable, "-c", "from agent.cli import main; main()", "serve"]
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def postgres(admin_url: str) -> Iterator[str | None]:
    """A scratch PostgreSQL database (None when the server is not reachable)."""
    import psycopg

    name = f"rca_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        yield None
        return
    try:
        base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alert(incident: Path, group: str) -> dict[str, Any]:
    """The incident's recorded alert, re-keyed as a new alert group."""
    payload: dict[str, Any] = json.loads((incident / "alert.json").read_text())
    payload["groupKey"] = f'{{}}:{{alertname="{group}"}}'
    for index, alert in enumerate(payload["alerts"]):
        alert["fingerprint"] = f"{group}-{index}"
    return payload


def _status(client: httpx.Client, analysis_id: str) -> str:
    status: str = client.get(f"/v1/analyses/{analysis_id}", headers=READER).json()["status"]
    return status


def latency(url: str, incident: Path, samples: int) -> list[float]:
    """Seconds from webhook to a stored analysis, one notification at a time."""
    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(samples):
            payload = _alert(incident, f"latency-{uuid.uuid4().hex[:8]}-{i}")
            began = time.perf_counter()
            answer = client.post("/v1/alertmanager", json=payload, headers=WEBHOOK)
            answer.raise_for_status()
            analysis_id = answer.json()["analysis_id"]
            while (status := _status(client, analysis_id)) not in ("done", "failed"):
                time.sleep(0.005)
            times.append(time.perf_counter() - began)
            if status != "done":
                raise click.ClickException(f"analysis {analysis_id} {status}")
    return times


def _queue_depth(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("rca_queue_depth "):
            return float(line.split()[-1])
    raise click.ClickException("rca_queue_depth missing from /metrics")


def intake(url: str, incident: Path, rate: int, seconds: int) -> dict[str, float]:
    """Send ``rate`` notifications per second for ``seconds``, then wait for the queue."""
    answers: list[tuple[int, float, str | None]] = []
    lock = threading.Lock()
    limits = httpx.Limits(max_connections=64)
    with httpx.Client(base_url=url, timeout=30, limits=limits) as client:

        def send(i: int) -> None:
            began = time.perf_counter()
            response = client.post(
                "/v1/alertmanager", json=_alert(incident, f"intake-{i}"), headers=WEBHOOK
            )
            ok = response.status_code == 202
            with lock:
                answers.append(
                    (
                        response.status_code,
                        time.perf_counter() - began,
                        response.json()["analysis_id"] if ok else None,
                    )
                )

        start = time.perf_counter()
        threads = []
        for i in range(rate * seconds):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            threads.append(threading.Thread(target=send, args=(i,)))
            threads[-1].start()
        for thread in threads:
            thread.join()
        sent_s = time.perf_counter() - start
        while _queue_depth(client) > 0:
            time.sleep(0.5)
        drained_s = time.perf_counter() - start
        ids = [analysis_id for _, _, analysis_id in answers if analysis_id]
        not_done = sum(1 for analysis_id in ids if _status(client, analysis_id) != "done")
    answer_s = np.array([t for _, t, _ in answers])
    return {
        "sent": len(answers),
        "accepted": len(ids),
        "not_analyzed": not_done,
        "send_s": round(sent_s, 2),
        "drain_s": round(drained_s, 2),
        "answer_p50_ms": round(float(np.percentile(answer_s, 50)) * 1000, 1),
        "answer_p95_ms": round(float(np.percentile(answer_s, 95)) * 1000, 1),
        "answer_max_ms": round(float(answer_s.max()) * 1000, 1),
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise click.ClickException("no VmRSS (Linux only)")


def _percentiles(times: list[float]) -> dict[str, float]:
    return {
        "samples": len(times),
        "p50_s": round(float(np.percentile(times, 50)), 3),
        "p95_s": round(float(np.percentile(times, 95)), 3),
        "max_s": round(max(times), 3),
    }


@click.command()
@click.option("--samples", default=40, show_default=True, help="Latency samples per database.")
@click.option("--rate", default=50, show_default=True, help="Intake notifications per second.")
@click.option("--seconds", default=60, show_default=True, help="Intake duration.")
@click.option(
    "--postgres",
    "admin_url",
    default="postgresql://postgres@127.0.0.1:5432/postgres",
    show_default=True,
    help="Admin URL to create a scratch database; empty: SQLite only.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def main(samples: int, rate: int, seconds: int, admin_url: str, json_out: Path | None) -> None:
    """Measure the service; see the module docstring."""
    console = Console()
    results: dict[str, Any] = {"latency": {}, "intake": {}}
    with tempfile.TemporaryDirectory(prefix="rca-bench-") as tmp:
        root = Path(tmp)
        big = write_scenario(simulate(7, services=50), root / "big" / "sim-7")
        small = root / "small"
        shutil.copytree(MINIMAL, small / "minimal")
        with scratch_postgres(admin_url) as pg_url:
            databases = {"sqlite": None, **({"postgresql": pg_url} if pg_url else {})}
            for name, url in databases.items():
                with served(root / f"data-{name}-idle", small, url) as (service, pid):
                    time.sleep(2)
                    results.setdefault("idle_rss_mb", {})[name] = round(rss_mb(pid), 1)
                with served(root / f"data-{name}-latency", big.parent, url) as (service, _):
                    console.print(f"latency on {name} ...")
                    results["latency"][name] = _percentiles(latency(service, big, samples))
                with served(root / f"data-{name}-intake", small, url) as (service, _):
                    console.print(f"intake {rate}/s for {seconds} s on {name} ...")
                    results["intake"][name] = intake(service, small / "minimal", rate, seconds)
    table = Table("measure", *results["latency"].keys())
    for key in ("p50_s", "p95_s", "max_s"):
        table.add_row(
            f"webhook→analysis {key}", *(str(v[key]) for v in results["latency"].values())
        )
    for key in ("sent", "accepted", "not_analyzed", "answer_p95_ms", "answer_max_ms", "drain_s"):
        table.add_row(f"intake {key}", *(str(v[key]) for v in results["intake"].values()))
    table.add_row("idle RSS MB", *(str(v) for v in results["idle_rss_mb"].values()))
    console.print(table)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results, indent=2) + "\n")


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str | None]:
    if not admin_url:
        yield None
        return
    with postgres(admin_url) as url:
        yield url


if __name__ == "__main__":
    main()
