"""The snapshot loader and writer on valid input, against ``docs/snapshot-format.md``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from snapshot_support import (
    MIN,
    MINIMAL,
    T0,
    edit_json,
    edit_line,
    gzip_file,
    load_error,
    read_json,
    write_json,
)

from agent.models import FaultType, LogRecord, Signal, SignalKind, Topology
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec, load_snapshot, write_snapshot

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
