"""The real VictoriaMetrics for tests (Debian's ``victoria-metrics``, one binary), loaded with
the same simulated incidents as the real Prometheus of ``prometheus_server``.

``start_victoriametrics`` serves a fresh data directory on a free port; ``import_openmetrics``
sends an OpenMetrics file (what ``promtool`` backfills into Prometheus) to its
``/api/v1/import/prometheus`` endpoint, timestamps turned from seconds into milliseconds,
and flushes it so that queries see it at once. Without the binary the tests skip, or fail
under ``RCA_REQUIRE_INTEGRATION=1`` (CI; ``make servers`` installs it).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_server import READY_TIMEOUT_S, free_port, require_binaries

BATCH_LINES = 50_000


@dataclass
class VictoriaMetricsServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


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
    log = workdir / "victoria-metrics.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    server = VictoriaMetricsServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"victoria-metrics did not become ready; log:\n{log.read_text()[-2000:]}")


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
