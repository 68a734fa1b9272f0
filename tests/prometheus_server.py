"""The real Prometheus for tests: backfill simulated incidents with promtool, serve them.

``start_prometheus`` runs ``/usr/bin/prometheus`` on a free port over a TSDB directory and
waits until it is ready (:mod:`server_process`); ``PrometheusServer.stop`` ends it. Below:
servers that misbehave on purpose, for the connector's error paths.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from server_process import ServerProcess, free_port, require_binaries, start_server

# bcrypt of "s3cret" at cost 4 (made once with Python's crypt module; Prometheus' web config
# only takes bcrypt hashes, and cost 4 keeps each request cheap).
BASIC_AUTH_USER = "rca"
BASIC_AUTH_PASSWORD = "s3cret"
BASIC_AUTH_HASH = "$2b$04$HjJjj8U0Nvf6Gw4b6ekHF.GFSfgqEsySG5HE3ct/2Ywy5ox5W.bb6"


PrometheusServer = ServerProcess


def start_prometheus(data_dir: Path, workdir: Path, basic_auth: bool = False) -> PrometheusServer:
    """Serve ``data_dir`` (scraping nothing) and return once ``/-/ready`` answers."""
    binary = require_binaries("prometheus")["prometheus"]
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    port = free_port()
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=100y",  # backfilled incidents are years old
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    auth = None
    if basic_auth:
        web = workdir / "web.yml"
        web.write_text(f"basic_auth_users:\n  {BASIC_AUTH_USER}: {BASIC_AUTH_HASH}\n")
        args.append(f"--web.config.file={web}")
        auth = (BASIC_AUTH_USER, BASIC_AUTH_PASSWORD)
    url = f"http://127.0.0.1:{port}"
    return start_server("prometheus", args, url, workdir / "prometheus.log", auth)


# --- servers that misbehave on purpose ----------------------------------------------------


class SilentServer:
    """Accepts connections and never answers: a Prometheus stuck past any timeout."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._socket.close()
        for connection in self._held:
            connection.close()


class StubPrometheus:
    """Answers every request with one fixed status and body, and records what it was sent."""

    def __init__(self, status: int, body: dict[str, object]) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


EMPTY_MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": []}}


def closed_port_url() -> str:
    """A URL nothing listens on (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"
