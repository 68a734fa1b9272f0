"""The real VictoriaMetrics for tests (Debian's ``victoria-metrics``, one binary), loaded with
the same simulated incidents as the real Prometheus of ``prometheus_server``.

``start_victoriametrics`` serves a fresh data directory on a free port; ``import_openmetrics``
sends an OpenMetrics file (what ``promtool`` backfills into Prometheus) to its
``/api/v1/import/prometheus`` endpoint, timestamps turned from seconds into milliseconds,
and flushes it so that queries see it at once. Without the binary the tests skip, or fail
under ``RCA_REQUIRE_INTEGRATION=1`` (CI; ``make servers`` installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
from server_process import ServerProcess, free_port, require_binaries, start_server

BATCH_LINES = 50_000


VictoriaMetricsServer = ServerProcess


def start_victoriametrics(workdir: Path) -> VictoriaMetricsServer:
    """A VictoriaMetrics with an empty store, returned once ``/-/ready`` answers."""
    binary = require_binaries("victoria-metrics")["victoria-metrics"]
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        binary,
        f"-storageDataPath={workdir / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y",  # the simulated incidents are years old
        "-search.disableCache",  # imported history must not hide behind a cached answer
    ]
    url = f"http://127.0.0.1:{port}"
    return start_server("victoria-metrics", args, url, workdir / "victoria-metrics.log")


def prometheus_text(openmetrics: Path) -> Iterator[str]:
    """The samples of an OpenMetrics file as Prometheus text lines (timestamps in ms)."""
    with openmetrics.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip() or line.startswith("#"):
                continue
            series, value, stamp = line.rstrip("\n").rsplit(" ", 2)
            yield f"{series} {value} {round(float(stamp) * 1000)}"


def import_openmetrics(server: VictoriaMetricsServer, openmetrics: Path) -> int:
    """Import the file's samples and flush them to search; returns the lines sent."""
    sent = 0
    batch: list[str] = []
    with httpx.Client(base_url=server.url, timeout=60) as client:

        def flush() -> None:
            response = client.post("/api/v1/import/prometheus", content="\n".join(batch) + "\n")
            response.raise_for_status()
            batch.clear()

        for line in prometheus_text(openmetrics):
            batch.append(line)
            sent += 1
            if len(batch) >= BATCH_LINES:
                flush()
        if batch:
            flush()
        client.get("/internal/force_flush").raise_for_status()
    return sent
