"""Real Prometheus and Alertmanager for the end-to-end webhook test.

Prometheus scrapes the service's own ``/metrics`` every second and evaluates a rule on the
scraped ``up`` series that fires at once; Alertmanager (``group_wait: 1s``) posts the
notification to the service's webhook with the bearer token in
``http_config.authorization``, exactly as docs/alertmanager.md tells users to configure it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from server_process import end, free_port
from service_support import unavailable, wait_for

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
ALERT_NAME = "RcaSmokeTest"


def require_binaries() -> None:
    for binary in (PROMETHEUS, ALERTMANAGER):
        if shutil.which(binary) is None:
            unavailable(f"{binary} is not installed")


def alertmanager_config(webhook_url: str, token: str) -> str:
    return f"""\
route:
  receiver: rca-agent
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: rca-agent
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


def prometheus_config(target: str, alertmanager: str, rules: Path) -> str:
    return f"""\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [{rules}]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{alertmanager}"]
scrape_configs:
  - job_name: rca-agent
    static_configs:
      - targets: ["{target}"]
"""


RULES = f"""\
groups:
  - name: smoke
    rules:
      - alert: {ALERT_NAME}
        expr: up{{job="rca-agent"}} == 1
        labels:
          service: frontend
          severity: page
        annotations:
          summary: the rca-agent service is up (a test alert)
"""


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def alerting_stack(tmp_path: Path, service_url: str, token: str) -> Iterator[dict[str, str]]:
    """Alertmanager then Prometheus, wired to ``service_url``; yields their URLs."""
    require_binaries()
    am_port, prom_port = free_port(), free_port()
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(alertmanager_config(f"{service_url}/v1/alertmanager", token))
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    prom_config = tmp_path / "prometheus.yml"
    target = service_url.removeprefix("http://")
    prom_config.write_text(prometheus_config(target, f"127.0.0.1:{am_port}", rules))
    processes = [
        _start(
            [
                ALERTMANAGER,
                f"--config.file={am_config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            tmp_path / "alertmanager.log",
        )
    ]
    try:
        am_url = f"http://127.0.0.1:{am_port}"
        wait_for(lambda: _ready(am_url + "/-/ready"), 30, "Alertmanager to be ready")
        processes.append(
            _start(
                [
                    PROMETHEUS,
                    f"--config.file={prom_config}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                tmp_path / "prometheus.log",
            )
        )
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: _ready(prom_url + "/-/ready"), 30, "Prometheus to be ready")
        yield {"alertmanager": am_url, "prometheus": prom_url}
    finally:
        for process in reversed(processes):
            end(process)
