"""Every malformed snapshot gets one line naming the file and the field, and exit code 2.

Invalid snapshots are built in ``tmp_path`` from the valid ``minimal`` fixture by changing one
thing, so each test shows exactly which mistake produces which one-line error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from snapshot_support import (
    edit_json,
    edit_line,
    gzip_file,
    load_error,
    read_json,
    write_json,
)

from agent.snapshot import load_snapshot

# --- every invalid case ---------------------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope")
    assert err.file == str(tmp_path / "nope")
    assert err.message == "directory does not exist"


def test_path_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.tar"
    path.write_text("x")
    err = load_error(path)
    assert (err.file, err.message) == (str(path), "not a directory")


def test_missing_snapshot_json(snap: Path) -> None:
    (snap / "snapshot.json").unlink()
    err = load_error(snap)
    assert (err.file, err.field) == ("snapshot.json", None)
    assert str(snap) in err.message


def test_bad_json_in_snapshot_json(snap: Path) -> None:
    (snap / "snapshot.json").write_text(
        '{\n  "id": "x",\n  "version": 1\n  "format": "rca-snapshot"\n}'
    )
    err = load_error(snap)
    assert err.file == "snapshot.json"
    assert "not valid JSON (line 4" in err.message


def test_snapshot_json_gzipped_is_not_looked_for(snap: Path) -> None:
    gzip_file(snap / "snapshot.json")
    assert load_error(snap).file == "snapshot.json"


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"version": 3}, "version", "unsupported version 3; this rca-agent reads 1, 2"),
        ({"version": "2"}, "version", "unsupported version '2'"),
        ({"format": "other-tool"}, "format", "rca-snapshot"),
        ({"id": ""}, "id", "at least 1 character"),
        ({"extra": 1}, "extra", "Extra inputs are not permitted"),
        ({"window": {"incident": "2024-05-14T10:20:00Z"}}, "window.incident", "Extra inputs"),
        ({"window": {"incident_start": "soon"}}, "window.incident_start", "datetime"),
    ],
)
def test_bad_snapshot_json_fields(
    snap: Path, changes: dict[str, Any], field: str, text: str
) -> None:
    edit_json(snap / "snapshot.json", **changes)
    err = load_error(snap)
    assert (err.file, err.field) == ("snapshot.json", field)
    assert text in err.message


def test_snapshot_json_without_id(snap: Path) -> None:
    meta = read_json(snap / "snapshot.json")
    del meta["id"]
    write_json(snap / "snapshot.json", meta)
    err = load_error(snap)
    assert (err.file, err.field, err.message) == ("snapshot.json", "id", "Field required")


def test_version_and_format_default_for_version_1_readers(snap: Path) -> None:
    meta = read_json(snap / "snapshot.json")
    del meta["version"], meta["format"]
    write_json(snap / "snapshot.json", meta)
    assert load_snapshot(snap).meta.version == 1


def test_bad_json_on_line_n_of_signals(snap: Path) -> None:
    lines = (snap / "signals.jsonl").read_text().splitlines()
    lines.insert(2, '{"service": "a", "name": ')
    (snap / "signals.jsonl").write_text("\n".join(lines) + "\n")
    err = load_error(snap)
    assert (err.file, err.field) == ("signals.jsonl", "line 3")
    assert err.message.startswith("not valid JSON")


def test_timestamps_values_length_mismatch(snap: Path) -> None:
    edit_line(snap / "signals.jsonl", 2, lambda r: r["values"].pop())
    err = load_error(snap)
    assert (err.file, err.field) == ("signals.jsonl", "line 2")
    assert err.message == "timestamps has 30 points but values has 29"


def test_non_increasing_timestamps(snap: Path) -> None:
    def swap(record: dict[str, Any]) -> None:
        ts = record["timestamps"]
        ts[4], ts[5] = ts[5], ts[4]

    edit_line(snap / "signals.jsonl", 4, swap)
    err = load_error(snap)
    assert (err.file, err.field) == ("signals.jsonl", "line 4")
    assert err.message == "timestamps must be strictly increasing"


def test_millisecond_timestamps(snap: Path) -> None:
    edit_line(
        snap / "signals.jsonl",
        1,
        lambda r: r.update(timestamps=[t * 1000 for t in r["timestamps"]]),
    )
    err = load_error(snap)
    assert (err.file, err.field) == ("signals.jsonl", "line 1")
    assert "Unix seconds" in err.message and "milliseconds" in err.message


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"color": "red"}, "line 3: color", "Extra inputs are not permitted"),
        ({"kind": "cpu"}, "line 3: kind", "'resource', 'latency'"),
        ({"service": ""}, "line 3: service", "at least 1 character"),
        ({"resolution_s": -1}, "line 3: resolution_s", "greater than 0"),
        ({"values": "1,2,3"}, "line 3: values", "valid list"),
    ],
)
def test_bad_signal_fields(snap: Path, changes: dict[str, Any], field: str, text: str) -> None:
    edit_line(snap / "signals.jsonl", 3, lambda r: r.update(changes))
    err = load_error(snap)
    assert (err.file, err.field) == ("signals.jsonl", field)
    assert text in err.message


def test_signal_line_missing_a_required_field(snap: Path) -> None:
    edit_line(snap / "signals.jsonl", 5, lambda r: r.pop("name"))
    err = load_error(snap)
    assert (err.file, err.field, err.message) == ("signals.jsonl", "line 5: name", "Field required")


def test_signal_line_that_is_not_an_object(snap: Path) -> None:
    (snap / "signals.jsonl").write_text("[1, 2, 3]\n")
    err = load_error(snap)
    assert (err.file, err.field) == ("signals.jsonl", "line 1")
    assert "dictionary" in err.message


def test_alert_with_version_3(snap: Path) -> None:
    edit_json(snap / "alert.json", version="3")
    err = load_error(snap)
    assert (err.file, err.field) == ("alert.json", "version")
    assert "'4'" in err.message


def test_alert_with_no_alerts(snap: Path) -> None:
    edit_json(snap / "alert.json", alerts=[])
    err = load_error(snap)
    assert (err.file, err.field) == ("alert.json", "alerts")
    assert "at least 1 item" in err.message


def test_alert_missing_starts_at(snap: Path) -> None:
    alert = read_json(snap / "alert.json")
    del alert["alerts"][0]["startsAt"]
    write_json(snap / "alert.json", alert)
    err = load_error(snap)
    assert (err.file, err.field, err.message) == (
        "alert.json",
        "alerts.0.startsAt",
        "Field required",
    )


def test_bad_json_in_alert(snap: Path) -> None:
    (snap / "alert.json").write_text('{"version": "4",')
    err = load_error(snap)
    assert (err.file, err.field) == ("alert.json", None)
    assert "not valid JSON" in err.message


def test_no_signals_and_no_logs(snap: Path) -> None:
    (snap / "signals.jsonl").unlink()
    (snap / "logs.jsonl").unlink()
    err = load_error(snap)
    assert err.file == str(snap)
    assert "neither signals.jsonl nor logs.jsonl" in err.message


def test_empty_signals_and_logs_files_count_as_none(snap: Path) -> None:
    (snap / "signals.jsonl").write_text("")
    (snap / "logs.jsonl").write_text("\n")
    assert "nothing to analyse" in load_error(snap).message


def test_no_alert_and_no_incident_start(snap: Path) -> None:
    (snap / "alert.json").unlink()
    err = load_error(snap)
    assert (err.file, err.field) == ("snapshot.json", "window.incident_start")
    assert err.message == "required when there is no alert.json"


@pytest.mark.parametrize(
    "window",
    [
        {"incident_start": "2024-05-14T11:00:00Z"},  # after the data ends
        {"incident_start": "2024-05-14T09:00:00Z"},  # before it starts
        {"incident_start": "2024-05-14T10:00:00Z"},  # exactly at start: no baseline
        {"start": "2024-05-14T10:20:00Z", "incident_start": "2024-05-14T10:10:00Z"},
    ],
)
def test_incident_start_outside_the_window(snap: Path, window: dict[str, str]) -> None:
    edit_json(snap / "snapshot.json", window=window)
    err = load_error(snap)
    assert (err.file, err.field) == ("snapshot.json", "window")
    assert "start < incident_start < end" in err.message
    assert f"incident_start={window['incident_start'].replace('Z', '+00:00')}" in err.message


def test_alert_long_after_the_data(snap: Path) -> None:
    alert = read_json(snap / "alert.json")
    edit_json(
        snap / "alert.json", alerts=[{**alert["alerts"][0], "startsAt": "2024-05-14T12:00:00Z"}]
    )
    err = load_error(snap)
    assert (err.file, err.field) == ("snapshot.json", "window")


def test_ground_truth_with_unknown_fault_type(snap: Path) -> None:
    edit_json(snap / "ground_truth.json", fault_type="gremlins")
    err = load_error(snap)
    assert (err.file, err.field) == ("ground_truth.json", "fault_type")
    assert "'cpu_saturation'" in err.message and "'unknown'" in err.message


def test_topology_with_bad_edge(snap: Path) -> None:
    edit_json(snap / "topology.json", edges=[{"caller": "frontend"}])
    err = load_error(snap)
    assert (err.file, err.field, err.message) == (
        "topology.json",
        "edges.0.callee",
        "Field required",
    )


def test_log_line_missing_message(snap: Path) -> None:
    edit_line(snap / "logs.jsonl", 2, lambda r: r.pop("message"))
    err = load_error(snap)
    assert (err.file, err.field, err.message) == ("logs.jsonl", "line 2: message", "Field required")


def test_ecs_log_line_missing_message(snap: Path) -> None:
    edit_line(snap / "logs.jsonl", 3, lambda r: r.pop("message"))
    err = load_error(snap)
    assert (err.file, err.field, err.message) == ("logs.jsonl", "line 3: message", "Field required")


def test_ecs_log_line_missing_service(snap: Path) -> None:
    edit_line(snap / "logs.jsonl", 3, lambda r: r.pop("service"))
    err = load_error(snap)
    assert (err.file, err.field, err.message) == ("logs.jsonl", "line 3: service", "Field required")


def test_native_log_line_with_unknown_key(snap: Path) -> None:
    edit_line(snap / "logs.jsonl", 1, lambda r: r.update(host="node-1"))
    err = load_error(snap)
    assert (err.file, err.field) == ("logs.jsonl", "line 1: host")


def test_log_line_with_nanosecond_timestamp(snap: Path) -> None:
    edit_line(snap / "logs.jsonl", 4, lambda r: r.update(timestamp=r["timestamp"] * 10**9))
    err = load_error(snap)
    assert (err.file, err.field) == ("logs.jsonl", "line 4: timestamp")


def test_bad_json_on_line_n_of_logs(snap: Path) -> None:
    with (snap / "logs.jsonl").open("a") as fh:
        fh.write("not json\n")
    err = load_error(snap)
    assert (err.file, err.field) == ("logs.jsonl", "line 5")
