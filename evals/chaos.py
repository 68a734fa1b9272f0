"""The moving parts of the chaos benchmark (:mod:`evals.bench_reliability`).

- :class:`ServeProcess`: ``rca serve`` as a subprocess on a fixed port, so that it can be
  killed with SIGKILL and started again where Alertmanager keeps sending;
- :func:`deliver_all`: Alertmanager's side of the webhook: concurrent senders (asyncio), each
  notification retried with exponential backoff on a refused connection, a timeout, a 5xx or
  a 429 until it is answered otherwise, every attempt timed;
- faults: a store that fails (:func:`kill_connections` on PostgreSQL, :func:`lock_sqlite`),
  sources that refuse or stall (:class:`SlowServer`), :func:`stall` connections;
- :func:`count_outcome`: what the store and Slack hold afterwards, per alert group.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

TOKEN = "chaos-webhook-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """``rca serve`` on ``port``; :meth:`start` again after :meth:`kill` to restart it."""

    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        self.env = {**os.environ, **env, "RCA_SERVICE__PORT": str(port)}
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        command = [sys.executable, "-c", "from agent.cli import main; main()", "serve"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"rca serve did not start; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as when a node dies."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


# --- Alertmanager's side -----------------------------------------------------------------


@dataclass
class Delivery:
    """One notification: every attempt's answer (None: no answer) and its time."""

    group_key: str
    attempts: list[tuple[int | None, float]] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return any(status == 202 for status, _ in self.attempts)


class _Connection:
    """One keep-alive HTTP/1.1 connection, as Alertmanager's Go client keeps them: a few
    lines of asyncio instead of a client library, so the load generator leaves the two
    cores to the service and times answers without waiting for a GIL of its own."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes, timeout_s: float) -> int | None:
        """The answer's status, or None: refused, reset, or no answer in time."""
        try:
            return await asyncio.wait_for(self._post(request), timeout_s)
        except (TimeoutError, OSError, EOFError, ValueError):
            self.close()
            return None

    async def _post(self, request: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        status = int((await self.reader.readuntil(b"\r\n")).split()[1])
        length, close = 0, False
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                close = True
        await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _request(host: str, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"POST /v1/alertmanager HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _deliver_all(
    url: str,
    payloads: list[dict[str, Any]],
    senders: int,
    deadline_s: float,
    acknowledged: Callable[[int], None] | None,
) -> list[Delivery]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    requests = [_request(f"{host}:{port}", p) for p in payloads]
    deliveries = [Delivery(p["groupKey"]) for p in payloads]
    deadline = time.monotonic() + deadline_s
    todo = iter(range(len(payloads)))
    done = 0

    async def sender() -> None:
        nonlocal done
        connection = _Connection(host, int(port))
        for index in todo:
            delivery, backoff = deliveries[index], 0.1
            while time.monotonic() < deadline:  # Alertmanager's retry: 5xx, 429, no answer
                began = time.perf_counter()
                status = await connection.post(requests[index], 10.0)
                delivery.attempts.append((status, time.perf_counter() - began))
                if status is not None and status < 500 and status != 429:
                    break
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
            if delivery.acknowledged and acknowledged is not None:
                done += 1
                acknowledged(done)
        connection.close()

    await asyncio.gather(*(sender() for _ in range(senders)))
    return deliveries


def deliver_all(
    url: str,
    payloads: list[dict[str, Any]],
    senders: int,
    deadline_s: float,
    acknowledged: Callable[[int], None] | None = None,
) -> list[Delivery]:
    """Send every payload from ``senders`` concurrent senders, each notification retried
    like Alertmanager until answered otherwise than 5xx or 429 (backing off 0.1 s to 2 s)
    or until ``deadline_s``; ``acknowledged(n)`` after each 202."""
    return asyncio.run(_deliver_all(url, payloads, senders, deadline_s, acknowledged))


# --- faults ------------------------------------------------------------------------------


def kill_connections(database_url: str, admin_url: str) -> int:
    """PostgreSQL: terminate every backend of the service's database, as a restart does."""
    name = database_url.rsplit("/", 1)[1]
    admin_url = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            ).scalar()
    finally:
        admin.dispose()
    return int(killed or 0)


def lock_sqlite(path: Path, seconds: float) -> None:
    """SQLite: another process holds the write lock for ``seconds`` (a backup, a migration)."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


class SlowServer:
    """An HTTP server that answers every request after ``delay_s``: a source past its timeout."""

    def __init__(self, delay_s: float) -> None:
        delay = delay_s

        class Handler(BaseHTTPRequestHandler):
            def _slow(self) -> None:
                time.sleep(delay)
                body = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up long ago

            do_GET = do_POST = do_HEAD = _slow

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> SlowServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def stall(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that send part of a request and stop: half stall in the head,
    half in the body. Yields the sockets; closes them on exit."""
    head = b"POST /v1/alertmanager HTTP/1.1\r\nHost: rca\r\n"
    body = head + b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"
    opened: list[socket.socket] = []
    try:
        for index in range(count):
            connection = socket.create_connection(("127.0.0.1", port))
            connection.sendall(body if index % 2 else head)
            opened.append(connection)
        yield opened
    finally:
        for connection in opened:
            connection.close()


def closed_by_server(connections: list[socket.socket]) -> int:
    """How many of ``connections`` the server has closed since the last call (each is read
    to its end without waiting, and counted once)."""
    closed = 0
    for connection in connections:
        if connection.fileno() == -1:
            continue  # counted before
        connection.setblocking(False)
        try:
            while chunk := connection.recv(65536):
                del chunk
        except BlockingIOError:
            continue
        except OSError:
            pass
        closed += 1
        connection.close()
    return closed


# --- what is stored and posted -----------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """Per alert group: analyses stored (any state), analyses done, Slack top-level posts."""

    analyses: Counter[str]
    done: Counter[str]
    posts: Counter[str]


def count_outcome(database_url: str, slack: Any) -> Stored:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT i.group_key, a.status FROM analyses a "
                    "JOIN incidents i ON a.incident_id = i.id"
                )
            ).all()
    finally:
        engine.dispose()
    posts: Counter[str] = Counter(
        (m.metadata or {}).get("event_payload", {}).get("incident_key", "?")
        for m in slack.top_level()
    )
    return Stored(
        analyses=Counter(group for group, _ in rows),
        done=Counter(group for group, status in rows if status == "done"),
        posts=posts,
    )
