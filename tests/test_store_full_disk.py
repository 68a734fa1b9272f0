"""SQLite on a disk that is full (issue 19): the webhook answers 503 with ``Retry-After`` and
stores nothing half-written; once space is back, Alertmanager's retry is stored.

The disk is a real one: a 4 MiB tmpfs holding the database, filled with a file until the
kernel says ENOSPC. Mounting needs root (CI and this project's machines run as root); without
it the test is skipped with the reason.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import WEBHOOK_TOKEN, LiveServer, auth, notification, settings_for
from sqlalchemy import func, select

from agent.service.app import create_app
from agent.store.tables import Incident

WEBHOOK = "/v1/alertmanager"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Write zeros into ``disk`` until the kernel refuses: the disk is full."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as err:
            assert err.errno == errno.ENOSPC
    with filler.open("ab", buffering=0) as out:  # the last partial block too
        try:
            while True:
                out.write(b"\0")
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


def _incidents(state: Any) -> int:
    with state.sessions.begin() as session:
        return int(session.scalar(select(func.count()).select_from(Incident)) or 0)


def test_a_full_disk_is_503_with_retry_after_and_the_retry_is_stored(
    tmp_path: Path, small_disk: Path
) -> None:
    app = create_app(settings_for(tmp_path, database_url=f"sqlite:///{small_disk / 'rca.db'}"))
    server = LiveServer(app)
    state = app.state.rca
    try:
        first = httpx.post(
            server.url + WEBHOOK, json=notification(group="before"), headers=auth(WEBHOOK_TOKEN)
        )
        assert first.status_code == 202, first.text
        stored = _incidents(state)

        filler = _fill(small_disk)
        assert os.statvfs(small_disk).f_bavail == 0
        payload = notification(group="while-full")
        # Enough label text that the new rows cannot fit in pages SQLite already has.
        payload["commonAnnotations"] = {"description": "x" * 200_000}
        full = httpx.post(server.url + WEBHOOK, json=payload, headers=auth(WEBHOOK_TOKEN))
        assert full.status_code == 503, full.text
        assert int(full.headers["Retry-After"]) > 0
        assert "database" in full.json()["error"]["message"].lower()
        assert _incidents(state) == stored  # nothing half-written

        # The service keeps answering what needs no write.
        assert httpx.get(server.url + "/healthz").status_code == 200

        filler.unlink()
        retried = httpx.post(server.url + WEBHOOK, json=payload, headers=auth(WEBHOOK_TOKEN))
        assert retried.status_code == 202, retried.text
        assert _incidents(state) == stored + 1
    finally:
        server.stop()
        state.engine.dispose()
