"""The snapshot loader and writer against the format in ``docs/snapshot-format.md``.

Invalid snapshots are built in ``tmp_path`` from the valid ``minimal`` fixture by changing one
thing, so each test shows exactly which mistake produces which one-line error.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.errors import SnapshotError
from agent.models import FaultType, LogRecord, Signal, SignalKind, Topology
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec, load_snapshot, write_snapshot

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = Path(__file__).parent / "fixtures" / "snapshots" / "minimal"
DOC = ROOT / "docs" / "snapshot-format.md"
CONVERTER = ROOT / "docs" / "examples" / "csv_to_snapshot.py"

T0 = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)  # first sample of the minimal fixture
MIN = timedelta(minutes=1)


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    """A writable copy of the minimal fixture."""
    return Path(shutil.copytree(MINIMAL, tmp_path / "snap"))


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


# --- the valid fixture ----------------------------------------------------------------------


def test_minimal_fixture_loads_every_file() -> None:
    s = load_snapshot(MINIMAL)
    assert s.meta.id == "minimal-cart-cpu"
    assert s.meta.format == "rca-snapshot" and s.meta.version == 1
    assert s.alert is not None and s.alert.alert_name == "FrontendHighLatency"
    assert s.alert.services() == ["frontend"]
    assert [x.series_id for x in s.signals] == [
        "frontend:latency_p90",
        "frontend:requests",
        "cartservice/cartservice-5d8f7c9b6-x2k4q:cpu",
        "cartservice:latency-90",
        "redis:memory_usage",
    ]
    assert len(s.logs) == 4
    assert s.topology == Topology.model_validate(read_json(MINIMAL / "topology.json"))
    assert s.topology.callees("cartservice") == ["redis"]
    assert s.ground_truth is not None
    assert s.ground_truth.fault_type is FaultType.CPU_SATURATION
    assert s.ground_truth.onset == T0 + 20 * MIN
    assert s.services() == ["cartservice", "frontend", "redis"]


def test_pod_level_signal_keeps_its_pod_and_service() -> None:
    cpu = next(x for x in load_snapshot(MINIMAL).signals if x.name == "cpu")
    assert (cpu.service, cpu.pod, cpu.kind) == (
        "cartservice",
        "cartservice-5d8f7c9b6-x2k4q",
        SignalKind.RESOURCE,
    )


def test_signal_without_kind_loads_with_kind_unset() -> None:
    latency = next(x for x in load_snapshot(MINIMAL).signals if x.name == "latency-90")
    assert latency.kind is None
    assert latency.unit == ""


def test_missing_point_is_kept_as_none() -> None:
    cpu = next(x for x in load_snapshot(MINIMAL).signals if x.name == "cpu")
    assert cpu.values[7] is None
    assert len(cpu.values) == len(cpu.timestamps) == 30
    assert sum(v is None for v in cpu.values) == 1


def test_ecs_log_record_is_mapped_to_our_fields() -> None:
    ecs = load_snapshot(MINIMAL).logs[2]
    assert ecs.timestamp == T0 + timedelta(minutes=21, seconds=3.5)
    assert ecs.service == "cartservice"
    assert ecs.level == "ERROR"
    assert ecs.message == "Timeout waiting for redis response after 1000 ms"
    assert ecs.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert ecs.pod == "cartservice-5d8f7c9b6-x2k4q"
    assert ecs.fields == {"log.logger": "CartStore", "kubernetes.namespace": "shop"}


def test_native_log_records_normalise_level_and_epoch_time() -> None:
    logs = load_snapshot(MINIMAL).logs
    assert [r.level for r in logs] == ["INFO", "WARN", "ERROR", "ERROR"]
    assert logs[3].timestamp == T0 + 22 * MIN  # written as epoch seconds
    assert logs[0].trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "record",
    [
        {"@timestamp": "2024-05-14T10:21:00Z", "service.name": "cartservice", "msg": "flat"},
        {
            "ts": 1715682060,
            "service": {"name": "cartservice"},
            "severity": "warning",
            "msg": "flat",
        },
        {
            "time": "2024-05-14T10:21:00Z",
            "service.name": "cartservice",
            "log.level": "warn",
            "message": "flat",
            "trace.id": "t1",
            "kubernetes.pod.name": "cartservice-1",
        },
    ],
)
def test_shipper_aliases_flat_or_nested(snap: Path, record: dict[str, Any]) -> None:
    (snap / "logs.jsonl").write_text(json.dumps(record) + "\n")
    (log,) = load_snapshot(snap).logs
    assert (log.timestamp, log.service) == (T0 + 21 * MIN, "cartservice")
    assert log.message == "flat"
    assert log.fields == {}


# --- round trip and compression -------------------------------------------------------------


def test_round_trip_write_then_load_is_equal(tmp_path: Path) -> None:
    original = load_snapshot(MINIMAL)
    written = write_snapshot(original, tmp_path / "copy")
    assert written == tmp_path / "copy"
    again = load_snapshot(written)
    assert again == original
    assert again.signals[3].kind is None  # an omitted kind stays omitted


def test_round_trip_of_a_built_snapshot_fills_created_at(tmp_path: Path) -> None:
    stamps = [T0.timestamp() + i for i in range(10)]
    built = Snapshot(
        meta=SnapshotMeta(id="built", window=WindowSpec(incident_start=T0 + timedelta(seconds=6))),
        signals=[Signal(service="a", name="cpu", timestamps=stamps, values=[1.0] * 9 + [None])],
        logs=[LogRecord(timestamp=T0, service="a", message="hi", fields={"k": [1, None]})],
    )
    again = load_snapshot(write_snapshot(built, tmp_path / "built"))
    assert again.meta.created_at is not None
    assert again.meta.model_copy(update={"created_at": None}) == built.meta
    assert (again.signals, again.logs, again.alert, again.topology) == (
        built.signals,
        built.logs,
        None,
        None,
    )


def test_written_files_are_plain_json_without_class_names(tmp_path: Path) -> None:
    out = write_snapshot(load_snapshot(MINIMAL), tmp_path / "copy")
    for line in (out / "signals.jsonl").read_text().splitlines():
        assert set(json.loads(line)) <= set(Signal.model_fields)
    meta = read_json(out / "snapshot.json")
    assert (meta["format"], meta["version"]) == ("rca-snapshot", 1)
    assert "Signal" not in (out / "signals.jsonl").read_text()


def test_gzipped_files_load_like_plain_ones(snap: Path) -> None:
    expected = load_snapshot(snap)
    for name in ("signals.jsonl", "logs.jsonl", "alert.json", "topology.json"):
        gzip_file(snap / name)
    assert not (snap / "signals.jsonl").exists()
    assert load_snapshot(snap) == expected


def test_plain_file_wins_over_gz(snap: Path) -> None:
    plain = (snap / "signals.jsonl").read_text()
    gzip_file(snap / "signals.jsonl")
    (snap / "signals.jsonl").write_text(plain.splitlines()[0] + "\n")
    assert len(load_snapshot(snap).signals) == 1


def test_corrupt_gz_names_the_file(snap: Path) -> None:
    (snap / "signals.jsonl").unlink()
    (snap / "signals.jsonl.gz").write_bytes(b"not gzip at all")
    err = load_error(snap)
    assert err.file == "signals.jsonl.gz"
    assert "cannot read" in err.message


def test_error_in_gz_file_names_the_gz_file_and_line(snap: Path) -> None:
    edit_line(snap / "signals.jsonl", 2, lambda r: r.update(values=[1.0]))
    gzip_file(snap / "signals.jsonl")
    err = load_error(snap)
    assert (err.file, err.field) == ("signals.jsonl.gz", "line 2")


# --- values, resolutions, shapes ------------------------------------------------------------


def test_nan_and_infinity_in_the_file_become_none(snap: Path) -> None:
    lines = (snap / "signals.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    values = ["NaN", "Infinity", "-Infinity"] + [json.dumps(v) for v in record["values"][3:]]
    raw = json.dumps({**record, "values": []}).replace(
        '"values": []', f'"values": [{",".join(values)}]'
    )
    (snap / "signals.jsonl").write_text(raw + "\n")
    (s,) = load_snapshot(snap).signals
    assert s.values[:3] == [None, None, None]
    assert s.values[3:] == record["values"][3:]


@pytest.mark.parametrize("step_s", [1, 15, 60])
def test_any_resolution_with_a_three_sample_fault(tmp_path: Path, step_s: int) -> None:
    n = 40
    stamps = [T0.timestamp() + i * step_s for i in range(n)]
    values = [0.2] * (n - 3) + [0.95] * 3
    fault = T0 + timedelta(seconds=(n - 3) * step_s)
    lines = [
        {
            "service": "a",
            "name": "cpu",
            "resolution_s": step_s,
            "timestamps": stamps,
            "values": values,
        }
    ]
    root = tmp_path / f"res-{step_s}"
    root.mkdir()
    write_json(
        root / "snapshot.json",
        {
            "format": "rca-snapshot",
            "version": 1,
            "id": "r",
            "window": {"incident_start": fault.isoformat()},
        },
    )
    (root / "signals.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    s = load_snapshot(root)
    assert s.signals[0].resolution_s == step_s
    window = s.window()
    assert window.incident_start == fault
    assert window.end == T0 + timedelta(seconds=(n - 1) * step_s)
    assert sum(t >= fault.timestamp() for t in s.signals[0].timestamps) == 3


def test_series_of_different_resolutions_mix(snap: Path) -> None:
    fine = {
        "service": "redis",
        "name": "ops",
        "resolution_s": 1,
        "timestamps": [T0.timestamp() + 600 + i for i in range(120)],
        "values": [100.0] * 120,
    }
    with (snap / "signals.jsonl").open("a") as fh:
        fh.write(json.dumps(fine) + "\n")
    s = load_snapshot(snap)
    assert [x.resolution_s for x in s.signals] == [60, 60, 60, 60, 60, 1]


def test_blank_lines_in_jsonl_are_skipped(snap: Path) -> None:
    text = (snap / "signals.jsonl").read_text()
    (snap / "signals.jsonl").write_text("\n" + text.replace("\n", "\n\n"))
    assert len(load_snapshot(snap).signals) == 5


def test_logs_only_snapshot_takes_its_window_from_logs(snap: Path) -> None:
    (snap / "signals.jsonl").unlink()
    edit_json(snap / "snapshot.json", window={"incident_start": "2024-05-14T10:20:00Z"})
    s = load_snapshot(snap)
    window = s.window()
    assert s.signals == []
    assert (window.start, window.end) == (
        T0 + timedelta(minutes=5, seconds=12),
        T0 + 22 * MIN,
    )


def test_signals_only_snapshot_loads(snap: Path) -> None:
    (snap / "logs.jsonl").unlink()
    s = load_snapshot(snap)
    assert s.logs == [] and len(s.signals) == 5


# --- window resolution ----------------------------------------------------------------------


def test_window_from_alert_is_starts_at_minus_lookback() -> None:
    window = load_snapshot(MINIMAL).window()
    assert window.start == T0
    assert window.end == T0 + 29 * MIN
    assert window.incident_start == T0 + 13 * MIN  # alert 10:23 minus 10 minutes


def test_window_lookback_is_a_parameter() -> None:
    window = load_snapshot(MINIMAL).window(lookback=timedelta(minutes=5))
    assert window.incident_start == T0 + 18 * MIN


def test_window_uses_earliest_alert_of_the_group(snap: Path) -> None:
    alert = read_json(snap / "alert.json")
    later = {**alert["alerts"][0], "startsAt": "2024-05-14T10:28:00Z"}
    earlier = {**alert["alerts"][0], "startsAt": "2024-05-14T10:21:00Z"}
    edit_json(snap / "alert.json", alerts=[later, earlier])
    assert load_snapshot(snap).window().incident_start == T0 + 11 * MIN


def test_window_is_clamped_to_keep_a_quarter_as_baseline(snap: Path) -> None:
    alert = read_json(snap / "alert.json")
    edit_json(
        snap / "alert.json", alerts=[{**alert["alerts"][0], "startsAt": "2024-05-14T10:12:00Z"}]
    )
    window = load_snapshot(snap).window()
    assert window.incident_start == T0 + timedelta(minutes=7, seconds=15)  # 10:00 + 29 min / 4


def test_explicit_incident_start_wins_over_alert(snap: Path) -> None:
    edit_json(snap / "snapshot.json", window={"incident_start": "2024-05-14T10:20:00Z"})
    assert load_snapshot(snap).window().incident_start == T0 + 20 * MIN


def test_explicit_incident_start_without_alert(snap: Path) -> None:
    (snap / "alert.json").unlink()
    edit_json(snap / "snapshot.json", window={"incident_start": 1715682000})
    s = load_snapshot(snap)
    assert s.alert is None
    assert s.window().incident_start == T0 + 20 * MIN


def test_explicit_bounds_override_the_data(snap: Path) -> None:
    edit_json(
        snap / "snapshot.json",
        window={"start": "2024-05-14T10:05:00Z", "end": "2024-05-14T10:25:00Z"},
    )
    window = load_snapshot(snap).window()
    assert (window.start, window.end) == (T0 + 5 * MIN, T0 + 25 * MIN)
    assert window.incident_start == T0 + 13 * MIN


def test_naive_window_bounds_are_utc_and_mix_with_the_alert(snap: Path) -> None:
    edit_json(
        snap / "snapshot.json",
        window={"start": "2024-05-14T10:00:00", "end": "2024-05-14T10:29:00"},
    )
    window = load_snapshot(snap).window()
    assert window.start == T0
    assert window.incident_start == T0 + 13 * MIN


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
        ({"version": 2}, "version", "unsupported version 2; this rca-agent reads 1"),
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


# --- the documentation stays true -----------------------------------------------------------


def doc_blocks(marker: str) -> dict[str, str]:
    """Fenced blocks that follow ``<!-- marker: name -->`` in the format document."""
    pattern = rf"<!-- {marker}: (\S+) -->\n```\w*\n(.*?)\n```"
    return dict(re.findall(pattern, DOC.read_text(), flags=re.S))


def test_doc_example_is_a_valid_snapshot(tmp_path: Path) -> None:
    files = doc_blocks("file")
    assert set(files) == {
        "snapshot.json",
        "alert.json",
        "signals.jsonl",
        "logs.jsonl",
        "topology.json",
        "ground_truth.json",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text + "\n")
    s = load_snapshot(tmp_path)
    assert s.window().incident_start == T0 + 8 * MIN
    assert [x.kind for x in s.signals] == [SignalKind.RESOURCE, None]
    assert s.signals[0].values[3] is None
    assert (s.logs[1].service, s.logs[1].level) == ("frontend", "ERROR")
    assert s.ground_truth is not None and s.ground_truth.service == "cartservice"


def test_doc_states_the_supported_version() -> None:
    text = DOC.read_text()
    assert "# Incident snapshot format, version 1" in text
    assert "unsupported version N; this rca-agent reads 1" in text


def test_doc_converter_snippet_is_the_shipped_script() -> None:
    (snippet,) = doc_blocks("example").values()
    assert snippet in CONVERTER.read_text()


def _converter() -> Any:
    spec = importlib.util.spec_from_file_location("csv_to_snapshot", CONVERTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_csv_converter_output_loads(tmp_path: Path) -> None:
    start = int(T0.timestamp())
    pod = "cartservice-5d8f7c9b6-x2k4q"
    header = f"time,cartservice_cpu,cartservice_latency-90,{pod}_mem,frontend_workload"
    rows = [header]
    for i in reversed(range(30)):  # out of order on purpose
        cpu = "" if i == 4 else ("nan" if i == 5 else str(0.2 if i < 25 else 0.95))
        rows.append(f"{start + i},{cpu},{8 + (i >= 25) * 90},{5e7},{50}")
    rows.append(rows[-1])  # a duplicated row
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "inject_time.txt").write_text(f"{start + 25}\n")
    (tmp_path / "logs.csv").write_text(
        "time,container_name,message,level\n"
        f"{start + 26},cartservice-5d8f7c9b6-x2k4q,GetCart took 870 ms,warning\n"
        f"{start + 27},frontend,failed to retrieve cart,\n"
    )
    out = _converter().main(
        [
            str(tmp_path / "data.csv"),
            str(tmp_path / "case-1"),
            "--inject-time",
            str(tmp_path / "inject_time.txt"),
            "--logs",
            str(tmp_path / "logs.csv"),
            "--root-cause",
            "cartservice",
            "--fault",
            "cpu_saturation",
        ]
    )
    assert (out / "signals.jsonl.gz").is_file()
    s = load_snapshot(out)
    by_id = {x.series_id: x for x in s.signals}
    assert set(by_id) == {
        "cartservice:cpu",
        "cartservice:latency-90",
        "cartservice/cartservice-5d8f7c9b6-x2k4q:mem",
        "frontend:workload",
    }
    cpu = by_id["cartservice:cpu"]
    assert len(cpu.timestamps) == 30 and cpu.resolution_s == 1
    assert cpu.values[4] is None and cpu.values[5] is None and cpu.values[29] == 0.95
    assert all(x.kind is None for x in s.signals)
    assert s.window().incident_start == T0 + timedelta(seconds=25)
    assert [(r.service, r.pod, r.level) for r in s.logs] == [
        ("cartservice", "cartservice-5d8f7c9b6-x2k4q", "WARN"),
        ("frontend", None, "INFO"),
    ]
    assert s.ground_truth is not None
    assert s.ground_truth.onset == T0 + timedelta(seconds=25)
