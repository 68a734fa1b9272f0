"""Shared pieces of the snapshot tests: the minimal fixture, file edits, error capture."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.errors import SnapshotError
from agent.snapshot import load_snapshot

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = Path(__file__).parent / "fixtures" / "snapshots" / "minimal"
DOC = ROOT / "docs" / "snapshot-format.md"
CONVERTER = ROOT / "docs" / "examples" / "csv_to_snapshot.py"

T0 = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)  # first sample of the minimal fixture
MIN = timedelta(minutes=1)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2))


def edit_json(path: Path, **changes: Any) -> None:
    write_json(path, {**read_json(path), **changes})


def edit_line(path: Path, lineno: int, edit: Callable[[dict[str, Any]], None]) -> None:
    lines = path.read_text().splitlines()
    record = json.loads(lines[lineno - 1])
    edit(record)
    lines[lineno - 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def gzip_file(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return target


def load_error(directory: Path) -> SnapshotError:
    with pytest.raises(SnapshotError) as info:
        load_snapshot(directory)
    err = info.value
    assert err.exit_code == 2
    assert "\n" not in str(err)
    assert str(err).startswith("invalid snapshot: ")
    return err
