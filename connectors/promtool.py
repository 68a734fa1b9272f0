"""Backfill OpenMetrics text into a Prometheus TSDB with ``promtool``.

``promtool tsdb create-blocks-from openmetrics`` writes ordinary TSDB blocks; a Prometheus
started on (or already running over) that data directory serves them like scraped data.
Backfilled samples are usually old, so Prometheus needs a retention longer than their age
(``--storage.tsdb.retention.time``) or it deletes them at the next compaction.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from agent.errors import SourceError

PROMTOOL_TIMEOUT_S = 300.0


def promtool_path(promtool: str = "promtool") -> str:
    """The promtool executable, or a SourceError that says how to get it."""
    found = shutil.which(promtool)
    if found is None:
        raise SourceError(
            "promtool",
            f"{promtool} not found on PATH: install Prometheus (Debian: apt install prometheus) "
            "or put promtool on PATH",
        )
    return found


def backfill(openmetrics: Path, data_dir: Path, promtool: str = "promtool") -> Path:
    """Write the series of ``openmetrics`` as blocks under ``data_dir``; returns ``data_dir``."""
    executable = promtool_path(promtool)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [
                executable,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(openmetrics),
                str(data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=PROMTOOL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SourceError(
            "promtool", f"backfill of {openmetrics} took over {PROMTOOL_TIMEOUT_S:g} s"
        ) from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise SourceError(
            "promtool",
            f"backfill of {openmetrics} failed: {detail[-1] if detail else done.returncode}",
        )
    return data_dir
