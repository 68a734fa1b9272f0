"""A real server binary as a test fixture: find it, start it on a free port, wait for its
``/-/ready``, stop it. Prometheus (``prometheus_server``), VictoriaMetrics
(``victoriametrics_server``) and Alertmanager (``alertmanager_server``) all start this way.

Without a binary the tests that need it skip, or fail when ``RCA_REQUIRE_INTEGRATION=1``
(CI), so a CI image that lost one cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

READY_TIMEOUT_S = 30.0


def require_binaries(*names: str) -> dict[str, str]:
    """Paths of the named executables; skip (or fail in CI) when one is missing."""
    found = {name: shutil.which(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        message = f"needs {', '.join(missing)} on PATH"
        if os.environ.get("RCA_REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"{message} (RCA_REQUIRE_INTEGRATION=1)")
        pytest.skip(message)
    return {name: path for name, path in found.items() if path is not None}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def end(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        end(self.process)


def start_server(
    name: str, args: list[str], url: str, log: Path, auth: tuple[str, str] | None = None
) -> ServerProcess:
    """Run ``args`` (output to ``log``) and return once ``{url}/-/ready`` answers 200; stop
    it and raise, with the log's tail, when it exits or is not ready in time."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(url, process, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/-/ready", auth=auth, timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not become ready; log:\n{log.read_text()[-2000:]}")
