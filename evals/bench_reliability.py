"""Chaos benchmark of ``rca serve``: does every alert get exactly one analysis and one Slack
post, and how fast is the webhook's answer, while things break?

Starts the real service as a subprocess on loopback (extractive backend, a recorded incident
as the source, Slack's Web API played by ``tests/slack_double.py`` driven by the real
slack-sdk), once on SQLite and once on a scratch database of the local PostgreSQL, and runs
each scenario with a fresh store:

- ``burst``: 1,000 notifications in 200 alert groups (5 deliveries of each, shuffled), 20
  concurrent senders that retry like Alertmanager (on no answer, 5xx or 429, backing off);
- ``kill9``: the same burst; ``rca serve`` is killed with SIGKILL after 40 % of it was
  acknowledged and started again on the same port;
- ``store``: PostgreSQL: every connection of the service is terminated
  (``pg_terminate_backend``, what a restart does to them) three times during the burst;
  SQLite: another process holds the write lock for 3 s;
- ``slack``: ``chat.postMessage`` answers 500 (the first 5 after posting anyway), then 429
  with ``Retry-After: 1``, then recovers;
- ``sources-down``: no snapshot; Prometheus and Elasticsearch refuse connections;
- ``sources-slow``: Prometheus and Elasticsearch answer after 3 s, past the 1 s timeout;
- ``stalled``: 300 connections that send part of a request and stop, open during the burst.

One table: sent, acknowledged (notifications answered 202), analyzed and posted (alert
groups with a stored analysis, with a Slack post), lost (groups without either after the
drain), duplicated (extra analyses or extra top-level posts of a group), 5xx (other than 503
with Retry-After, which tells Alertmanager to retry), 503, the webhook's answer time over
every attempt (p50/p95/p99/max, ms) and the time from the first notification until every
group is analysed and posted. Scenarios are bounded: 1,000 notifications (200 for the
sources scenarios, whose analyses wait on timeouts), 60 s of sending, 240 s to drain.

Example::

    make bench-reliability        # = python -m evals.bench_reliability --json out/...
    python -m evals.bench_reliability --scenario burst --postgres ''   # quick, SQLite only
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from evals.bench_service import MINIMAL, scratch_postgres
from evals.chaos import (
    TOKEN,
    Delivery,
    ServeProcess,
    SlowServer,
    closed_by_server,
    count_outcome,
    deliver_all,
    free_port,
    kill_connections,
    lock_sqlite,
    stall,
)

TESTS = Path(__file__).resolve().parents[1] / "tests"
CHANNEL = "C0INCIDENTS"
SCENARIOS = ("burst", "kill9", "store", "slack", "sources-down", "sources-slow", "stalled")
SEND_S = 60.0
DRAIN_S = 240.0
FAULT_AT = 0.4  # the share of the burst acknowledged when a fault strikes
STALLED = 300
READ_TIMEOUT_S = 10.0  # service.read_timeout_s, the default


@dataclass
class Row:
    scenario: str
    store: str
    sent: int
    acknowledged: int
    analyzed: int
    posted: int
    lost: int
    duplicated: int
    errors_5xx: int
    unavailable_503: int
    ack_p50_ms: float
    ack_p95_ms: float
    ack_p99_ms: float
    ack_max_ms: float
    drain_s: float | None
    note: str = ""


def notifications(groups: int, per_group: int, seed: int = 19) -> list[dict[str, Any]]:
    """``per_group`` identical deliveries of ``groups`` alert groups, in a shuffled order."""
    template = json.loads((MINIMAL / "alert.json").read_text())
    payloads = []
    for group in range(groups):
        payload = copy.deepcopy(template)
        payload["groupKey"] = f'{{}}:{{alertname="chaos-{group}"}}'
        for alert in payload["alerts"]:
            alert["fingerprint"] = f"chaos-{group}"
        payloads += [payload] * per_group
    random.Random(seed).shuffle(payloads)
    return payloads


def base_env(data: Path, snapshots: Path | None, database: str, slack_url: str) -> dict[str, str]:
    from slack_double import TOKEN as SLACK_TOKEN

    env = {
        "RCA_DATA_DIR": str(data),
        "RCA_DATABASE_URL": database,
        "RCA_WEBHOOK_TOKEN": TOKEN,
        "RCA_API_TOKENS": "chaos-read-token:read",
        "RCA_SERVICE__CHARTS": "false",
        "RCA_SERVICE__POLL_INTERVAL_S": "0.5",
        "RCA_SERVICE__LEASE_GRACE_S": "5",
        "RCA_SLACK_API_URL": slack_url,
        "RCA_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "RCA_SLACK__DEFAULT_CHANNEL": CHANNEL,
        "RCA_SLACK__OUTBOX_BACKOFF_S": "0.5",
        "RCA_SLACK__OUTBOX_MAX_BACKOFF_S": "2",
        "RCA_SLACK__MAX_RETRY_AFTER_S": "2",
    }
    if snapshots is not None:
        env["RCA_SNAPSHOT_DIR"] = str(snapshots)
    return env


def _sources(kind: str, stack: ExitStack) -> dict[str, str]:
    """Settings that point both sources at servers that refuse, or answer too late."""
    if kind == "down":
        prometheus, elastic = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    else:
        prometheus = stack.enter_context(SlowServer(3.0)).url
        elastic = stack.enter_context(SlowServer(3.0)).url
    return {
        "RCA_PROMETHEUS_URL": prometheus,
        "RCA_ELASTICSEARCH_URL": elastic,
        "RCA_PROMETHEUS__TIMEOUT_S": "1",
        "RCA_PROMETHEUS__RETRIES": "1",
        "RCA_PROMETHEUS__BACKOFF_S": "0.1",
        "RCA_ELASTICSEARCH__TIMEOUT_S": "1",
        "RCA_COLLECT__BUDGET_S": "5",
        "RCA_SERVICE__WORKERS": "8",  # the analyses wait on timeouts, not on the CPU
    }


@contextmanager
def _at(share: float, total: int, fault: Callable[[], None]) -> Iterator[Callable[[int], None]]:
    """A callback for :func:`deliver_all` that runs ``fault`` (in its own thread) once
    ``share`` of ``total`` notifications were acknowledged; joined on exit."""
    fired = threading.Event()
    thread = threading.Thread(target=fault, daemon=True)

    def acknowledged(count: int) -> None:
        if count >= share * total and not fired.is_set():
            fired.set()
            thread.start()

    yield acknowledged
    if fired.is_set():
        thread.join(60)


def run_scenario(name: str, store: str, database: str, root: Path, admin_url: str) -> Row:
    from slack_double import SlackDouble

    groups = 40 if name.startswith("sources") else 200
    payloads = notifications(groups, 5)
    data = root / "data"
    notes: list[str] = []
    with ExitStack() as stack:
        api = stack.enter_context(SlackDouble())
        snapshots = None if name.startswith("sources") else root / "snapshots"
        env = base_env(data, snapshots, database, api.api_url)
        if name.startswith("sources"):
            env |= _sources(name.removeprefix("sources-"), stack)
        if name == "slack":
            api.fail("chat.postMessage", status=500, processed=True, times=5)
            api.fail("chat.postMessage", status=500, times=15)
            api.fail("chat.postMessage", status=429, retry_after="1", times=20)
        data.mkdir(parents=True, exist_ok=True)
        service = ServeProcess(env, data / "serve.log", free_port())
        service.start()
        stack.callback(service.stop)
        fault = _fault(name, store, database, admin_url, data, service, notes)
        stalled: list[Any] = []
        if name == "stalled":
            stalled = stack.enter_context(stall(int(service.url.rsplit(":", 1)[1]), STALLED))
        began = time.monotonic()
        with _at(FAULT_AT, len(payloads), fault) as acknowledged:
            deliveries = deliver_all(service.url, payloads, 20, SEND_S, acknowledged)
        drain_s = _drain(database, api, {p["groupKey"] for p in payloads}, began)
        stored = count_outcome(database, api)
        if name == "stalled":
            notes.append(_closed(stalled, began))
        if name == "slack":
            calls = len(api.calls("chat.postMessage"))
            notes.append(f"chat.postMessage called {calls} times (40 failed as scripted)")
    unanswered = sum(1 for d in deliveries for status, _ in d.attempts if status is None)
    if unanswered:
        notes.append(f"{unanswered} attempts got no answer and were retried")
    return _row(name, store, deliveries, stored, drain_s, "; ".join(notes))


def _closed(stalled: list[Any], began: float) -> str:
    """How many stalled connections the server closed, read_timeout_s (10 s) after they
    stalled, with a little slack."""
    deadline = began + READ_TIMEOUT_S + 3
    closed = closed_by_server(stalled)
    while closed < len(stalled) and time.monotonic() < deadline:
        time.sleep(0.5)
        closed += closed_by_server(stalled)
    return f"{closed}/{len(stalled)} stalled connections closed by the server"


def _fault(
    name: str,
    store: str,
    database: str,
    admin_url: str,
    data: Path,
    service: ServeProcess,
    notes: list[str],
) -> Callable[[], None]:
    def kill9() -> None:
        service.kill()
        began = time.monotonic()
        service.start()
        notes.append(f"SIGKILL, restarted in {time.monotonic() - began:.1f} s")

    def store_fault() -> None:
        if store == "postgresql":
            killed = 0
            for _ in range(3):
                killed += kill_connections(database, admin_url)
                time.sleep(0.5)
            notes.append(f"{killed} PostgreSQL connections terminated in 3 rounds")
        else:
            lock_sqlite(data / "rca.db", 3.0)
            notes.append("another process held the SQLite write lock for 3 s")

    return {"kill9": kill9, "store": store_fault}.get(name, lambda: None)


def _drain(database: str, api: Any, groups: set[str], began: float) -> float | None:
    """Seconds until every group is analysed and posted; None when ``DRAIN_S`` passes."""
    while time.monotonic() - began < DRAIN_S:
        stored = count_outcome(database, api)
        if all(stored.done[g] and stored.posts[g] for g in groups):
            return round(time.monotonic() - began, 1)
        time.sleep(0.5)
    return None


def _row(
    name: str,
    store: str,
    deliveries: list[Delivery],
    stored: Any,
    drain_s: float | None,
    note: str,
) -> Row:
    groups = {d.group_key for d in deliveries}
    answered = [s for d in deliveries for s, t in d.attempts if s is not None]
    times = np.array([t for d in deliveries for s, t in d.attempts if s is not None]) * 1000
    duplicated = sum(max(0, stored.analyses[g] - 1) + max(0, stored.posts[g] - 1) for g in groups)

    def pct(q: float) -> float:
        return round(float(np.percentile(times, q)), 1) if len(times) else float("nan")

    return Row(
        scenario=name,
        store=store,
        sent=len(deliveries),
        acknowledged=sum(d.acknowledged for d in deliveries),
        analyzed=sum(1 for g in groups if stored.done[g]),
        posted=sum(1 for g in groups if stored.posts[g]),
        lost=sum(1 for g in groups if not (stored.done[g] and stored.posts[g])),
        duplicated=duplicated,
        errors_5xx=sum(1 for s in answered if s >= 500 and s != 503),
        unavailable_503=sum(1 for s in answered if s == 503),
        ack_p50_ms=pct(50),
        ack_p95_ms=pct(95),
        ack_p99_ms=pct(99),
        ack_max_ms=round(float(times.max()), 1) if len(times) else float("nan"),
        drain_s=drain_s,
        note=note,
    )


def print_table(rows: list[Row], console: Console) -> None:
    table = Table(title="rca serve under faults (ack times in ms)")
    columns = [
        "scenario",
        "store",
        "sent",
        "acked",
        "analyzed",
        "posted",
        "lost",
        "dup",
        "5xx",
        "503",
        "p50",
        "p95",
        "p99",
        "max",
        "drain_s",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column in ("scenario", "store") else "right")
    for r in rows:
        values = list(asdict(r).values())[:-1]
        table.add_row(*("-" if v is None else str(v) for v in values))
    console.print(table)
    for r in rows:
        if r.note:
            console.print(f"{r.scenario} / {r.store}: {r.note}")


@click.command()
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(SCENARIOS),
    help="Run only these (repeatable); default: all.",
)
@click.option(
    "--postgres",
    "admin_url",
    default="postgresql://postgres@127.0.0.1:5432/postgres",
    show_default=True,
    help="Admin URL to create scratch databases; empty: SQLite only.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def main(scenarios: tuple[str, ...], admin_url: str, json_out: Path | None) -> None:
    """Run the chaos scenarios; see the module docstring."""
    import sys

    sys.path.insert(0, str(TESTS))
    console = Console(width=170)
    rows: list[Row] = []
    for name in scenarios or SCENARIOS:
        for store in ("sqlite", "postgresql"):
            if store == "postgresql" and not admin_url:
                continue
            with (
                tempfile.TemporaryDirectory(prefix="rca-chaos-") as tmp,
                _store(store, Path(tmp), admin_url) as database,
            ):
                root = Path(tmp)
                shutil.copytree(MINIMAL, root / "snapshots" / "minimal")
                console.print(f"{name} on {store} ...")
                rows.append(run_scenario(name, store, database, root, admin_url))
    print_table(rows, console)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    failed = [r for r in rows if r.lost or r.duplicated or r.errors_5xx]
    if failed:
        raise click.ClickException(f"{len(failed)} scenario run(s) lost, duplicated or 5xx'd")


@contextmanager
def _store(store: str, root: Path, admin_url: str) -> Iterator[str]:
    if store == "sqlite":
        yield f"sqlite:///{root / 'data' / 'rca.db'}"
        return
    with scratch_postgres(admin_url) as url:
        if url is None:
            raise click.ClickException(f"PostgreSQL not reachable at {admin_url}")
        yield url


if __name__ == "__main__":
    main()
