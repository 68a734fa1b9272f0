"""Shared pieces of the service tests: settings, notifications, PostgreSQL databases,
``rca serve`` subprocesses, waiting.

Integration pieces (PostgreSQL, server binaries) skip when unavailable, except under
``RCA_REQUIRE_INTEGRATION=1`` (CI), where they fail.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from server_process import free_port

from agent.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = Path(__file__).parent / "fixtures" / "snapshots" / "minimal"
READ_TOKEN = "reader-token-1"
WRITE_TOKEN = "writer-token-1"
WEBHOOK_TOKEN = "webhook-token-1"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CHANNEL = "C0INCIDENTS"  # the Slack double's #incidents


def unavailable(reason: str) -> None:
    """Skip, or fail under RCA_REQUIRE_INTEGRATION=1."""
    if os.environ.get("RCA_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"integration requirement missing: {reason}")
    pytest.skip(reason)


def snapshot_dir(tmp_path: Path) -> Path:
    """A snapshot directory holding the minimal recorded incident (service ``frontend``)."""
    root = tmp_path / "snapshots"
    shutil.copytree(MINIMAL, root / "minimal")
    return root


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    service = {
        "workers": 2,
        "charts": False,
        "poll_interval_s": 0.2,
        **overrides.pop("service", {}),
    }
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "snapshot_dir": snapshot_dir(tmp_path),
        "api_tokens": [f"{READ_TOKEN}:read", f"{WRITE_TOKEN}:write"],
        "webhook_token": WEBHOOK_TOKEN,
        "service": service,
        **overrides,
    }
    return load_settings(**values)


def slack_settings(tmp_path: Path, api_url: str, **slack: Any) -> Settings:
    """Service settings that post to the Slack double at ``api_url`` and retry quickly."""
    from slack_double import SIGNING_SECRET, TOKEN

    return settings_for(
        tmp_path,
        slack_api_url=api_url,
        slack_bot_token=TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack={
            "default_channel": CHANNEL,
            "backoff_s": 0.01,
            "retries": 1,
            "max_retry_after_s": 1,
            "outbox_backoff_s": 0.2,
            "outbox_max_backoff_s": 0.4,
            **slack,
        },
    )


def texts(blocks: list[dict[str, Any]]) -> str:
    """Every text of a Slack message's blocks, one per line: what a person would read."""
    out = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"])
        out += [e.get("text", "") for e in block.get("elements", []) if isinstance(e, dict)]
    return "\n".join(str(t) for t in out)


def notification(
    group: str = "g1",
    fingerprint: str = "fp1",
    status: str = "firing",
    starts: str = "2024-05-14T10:23:00Z",
    service: str = "frontend",
) -> dict[str, Any]:
    """An Alertmanager v4 notification, as the minimal fixture's alert but re-keyed."""
    payload = json.loads((MINIMAL / "alert.json").read_text())
    payload = copy.deepcopy(payload)
    payload["groupKey"] = f'{{}}:{{alertname="{group}"}}'
    payload["status"] = status
    for alert in payload["alerts"]:
        alert["status"] = status
        alert["fingerprint"] = fingerprint
        alert["startsAt"] = starts
        alert["labels"]["service"] = service
        if status == "resolved":
            alert["endsAt"] = "2024-05-14T10:50:00Z"
    return payload


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def analysis_done(client: TestClient, analysis_id: str) -> dict[str, Any]:
    """``GET /v1/analyses/{id}`` once the analysis is done (60 s at most)."""

    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(
            f"/v1/analyses/{analysis_id}", headers=auth(READ_TOKEN)
        ).json()
        return body if body["status"] == "done" else None

    found: dict[str, Any] = wait_for(check, 60, f"analysis {analysis_id}")
    return found


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test; dropped afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"rca_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unavailable(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc.orig}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class AgentProcess:
    """An agent subprocess that answers ``/healthz`` on ``port``; ``stop`` or ``kill`` ends it."""

    def __init__(
        self, argv: list[str], env: dict[str, str], cwd: Path, log: Path, port: int, what: str
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.what = what
        self._out = log.open("ab")
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._healthy, 60, f"{what} on port {port} (log: {log})")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(
                f"{self.what} exited with {self.process.returncode}: {self.log.read_text()}"
            )
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, as when a node dies."""
        self.process.kill()
        self.process.wait(10)
        self._out.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._out.close()


class Served(AgentProcess):
    """One ``rca serve`` subprocess on a free port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        port = free_port()
        super().__init__(
            [sys.executable, "-c", "from agent.cli import main; main()", "serve"],
            {**env, "RCA_SERVICE__PORT": str(port)},
            ROOT,
            log,
            port,
            "rca serve",
        )


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "RCA_DATA_DIR": str(tmp_path / "data"),
        "RCA_SNAPSHOT_DIR": str(tmp_path / "snapshots"),
        "RCA_API_TOKENS": f"{READ_TOKEN}:read,{WRITE_TOKEN}:write",
        "RCA_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "RCA_SERVICE__CHARTS": "false",
        "RCA_SERVICE__POLL_INTERVAL_S": "0.2",
        **extra,
    }


class LiveServer:
    """The app under a real uvicorn server in a thread: real HTTP, real concurrency."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "uvicorn to start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
