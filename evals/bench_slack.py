"""Benchmark webhook → Slack post latency of ``rca serve`` (extractive backend).

Runs the real service as a subprocess, offline on a 50-service simulated incident
(``evals.simulator``), posting to the local Slack Web API double (``tests/slack_double.py``,
driven by slack-sdk exactly as Slack would be). Each sample sends one Alertmanager
notification (a new alert group) and is timed until the double has received the incident's
top-level ``chat.postMessage``; samples run one after another, each after the previous
incident's evidence chart was uploaded, so that no sample pays for another's chart. Reports
p50/p95/max per database; the target is p95 ≤ 3 s.

Example::

    python -m evals.bench_slack --json out/bench_slack.json
    python -m evals.bench_slack --samples 10 --postgres ''      # quick, SQLite only
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from evals.bench_service import (
    WEBHOOK,
    _alert,
    _percentiles,
    scratch_postgres,
    served,
)
from evals.simulator import simulate, write_scenario

TESTS = Path(__file__).resolve().parents[1] / "tests"
CHANNEL = "C0INCIDENTS"
TARGET_P95_S = 3.0


@contextmanager
def served_with_slack(
    data: Path, snapshots: Path, database: str | None, slack_api_url: str, slack_token: str
) -> Iterator[str]:
    """``rca serve`` posting every incident to ``CHANNEL`` at ``slack_api_url``."""
    slack = {
        "RCA_SLACK_API_URL": slack_api_url,
        "RCA_SLACK_BOT_TOKEN": slack_token,
        "RCA_SLACK__DEFAULT_CHANNEL": CHANNEL,
    }
    with served(data, snapshots, database, slack) as (url, _pid):
        yield url


def _posted(api: Any, group_key: str) -> bool:
    return any(
        (m.metadata or {}).get("event_payload", {}).get("incident_key") == group_key
        for m in api.top_level()
    )


def _wait(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out waiting for {what}")
        time.sleep(0.002)


def _settle(api: Any, uploads_before: int, timeout_s: float = 5.0) -> None:
    """Let this incident's chart upload finish (when it has a chart) before the next sample."""
    deadline = time.monotonic() + timeout_s
    while len(api.calls("files.completeUploadExternal")) <= uploads_before:
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)


def post_latency(url: str, api: Any, incident: Path, samples: int) -> list[float]:
    """Seconds from sending the webhook until Slack has the incident's post."""
    import httpx

    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(samples):
            payload = _alert(incident, f"slack-{uuid.uuid4().hex[:8]}-{i}")
            uploads = len(api.calls("files.completeUploadExternal"))
            began = time.perf_counter()
            client.post("/v1/alertmanager", json=payload, headers=WEBHOOK).raise_for_status()
            key = payload["groupKey"]
            _wait(lambda key=key: _posted(api, key), 60, f"post {i}")
            times.append(time.perf_counter() - began)
            _settle(api, uploads)
    return times


@click.command()
@click.option("--samples", default=30, show_default=True, help="Posts timed per database.")
@click.option(
    "--postgres",
    "admin_url",
    default="postgresql://postgres@127.0.0.1:5432/postgres",
    show_default=True,
    help="Admin URL to create a scratch database; empty: SQLite only.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def main(samples: int, admin_url: str, json_out: Path | None) -> None:
    """Measure webhook → Slack post latency; see the module docstring."""
    sys.path.insert(0, str(TESTS))
    from slack_double import TOKEN as SLACK_TOKEN
    from slack_double import SlackDouble

    console = Console()
    results: dict[str, Any] = {"target_p95_s": TARGET_P95_S, "latency": {}}
    with tempfile.TemporaryDirectory(prefix="rca-bench-slack-") as tmp:
        root = Path(tmp)
        big = write_scenario(simulate(7, services=50), root / "big" / "sim-7")
        with scratch_postgres(admin_url) as pg_url:
            databases = {"sqlite": None, **({"postgresql": pg_url} if pg_url else {})}
            for name, database in databases.items():
                with (
                    SlackDouble() as api,
                    served_with_slack(
                        root / f"data-{name}", big.parent, database, api.api_url, SLACK_TOKEN
                    ) as url,
                ):
                    console.print(f"webhook → Slack post on {name}, {samples} samples ...")
                    results["latency"][name] = _percentiles(post_latency(url, api, big, samples))
    table = Table("webhook → Slack post", *results["latency"].keys())
    for key in ("samples", "p50_s", "p95_s", "max_s"):
        table.add_row(key, *(str(v[key]) for v in results["latency"].values()))
    console.print(table)
    worst = max(v["p95_s"] for v in results["latency"].values())
    verdict = "meets" if worst <= TARGET_P95_S else "MISSES"
    console.print(f"p95 {worst} s {verdict} the target of {TARGET_P95_S} s")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
