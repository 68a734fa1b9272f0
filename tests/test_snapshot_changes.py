"""``changes.jsonl`` (snapshot format version 2): loaded, written, rejected when malformed, and
derived from the signals when a snapshot has none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from snapshot_support import MIN, T0, gzip_file, load_error, read_json

from agent.models import Change, ChangeKind
from agent.scope import in_neighbourhood
from agent.snapshot import FORMAT_VERSION, Snapshot, load_snapshot, write_snapshot

DEPLOY = {
    "service": "cartservice",
    "kind": "deploy",
    "at": "2024-05-14T10:18:00Z",
    "from_version": "v1.4.2",
    "to_version": "v1.4.3",
    "author": "ci-bot",
    "link": "https://github.com/shop/cart/actions/runs/7",
    "id": "cart-run-7",
}


def write_changes(snap: Path, *lines: dict[str, Any] | str) -> Path:
    path = snap / "changes.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def generation(service: str = "cartservice", step_at: int = 18) -> dict[str, Any]:
    """A kube-state-metrics generation series that steps at minute ``step_at``."""
    stamps = [T0.timestamp() + 60 * i for i in range(30)]
    values = [3.0 if i < step_at else 4.0 for i in range(30)]
    name = "kube_deployment_metadata_generation"
    return {"service": service, "name": name, "timestamps": stamps, "values": values}


def add_signal(snap: Path, signal: dict[str, Any]) -> None:
    with (snap / "signals.jsonl").open("a") as fh:
        fh.write(json.dumps(signal) + "\n")


def test_changes_jsonl_loads(snap: Path) -> None:
    minimal = {"service": "redis", "at": 1715681700}
    write_changes(snap, DEPLOY, "", minimal)
    first, second = load_snapshot(snap).changes
    assert first == Change(**{**DEPLOY, "source": "snapshot"})  # type: ignore[arg-type]
    assert (second.service, second.kind, second.at) == ("redis", ChangeKind.DEPLOY, T0 + 15 * MIN)
    assert second.source == "snapshot" and second.to_version is None


def test_changes_round_trip_as_version_2(snap: Path, tmp_path: Path) -> None:
    write_changes(snap, {**DEPLOY, "source": "api"}, {**DEPLOY, "namespace": "shop", "id": "8"})
    original = load_snapshot(snap)
    out = write_snapshot(original, tmp_path / "copy")
    assert read_json(out / "snapshot.json")["version"] == FORMAT_VERSION == 2
    again = load_snapshot(out)
    assert again.changes == original.changes and again.changes[0].source == "api"
    assert [c.namespace for c in again.changes] == [None, "shop"]
    assert again.model_copy(update={"meta": original.meta}) == original
    first, second = (json.loads(x) for x in (out / "changes.jsonl").read_text().splitlines())
    assert "namespace" not in first and second["namespace"] == "shop"  # only when known


def test_gzipped_changes_load(snap: Path) -> None:
    gzip_file(write_changes(snap, DEPLOY))
    assert [c.id for c in load_snapshot(snap).changes] == ["cart-run-7"]


@pytest.mark.parametrize(
    ("line", "field", "text"),
    [
        ('{"service": "cart", ', "line 2", "not valid JSON"),
        ({**DEPLOY, "at": None}, "line 2: at", "datetime"),
        ({k: v for k, v in DEPLOY.items() if k != "at"}, "line 2: at", "Field required"),
        ({**DEPLOY, "service": ""}, "line 2: service", "at least 1 character"),
        ({**DEPLOY, "kind": "reboot"}, "line 2: kind", "'deploy', 'config'"),
        ({**DEPLOY, "version": "v2"}, "line 2: version", "Extra inputs are not permitted"),
        ({**DEPLOY, "namespace": "Shop"}, "line 2: namespace", "not a Kubernetes namespace"),
        ([DEPLOY], "line 2", "valid dictionary"),
    ],
)
def test_malformed_change_lines_name_file_line_and_field(
    snap: Path, line: dict[str, Any] | str, field: str, text: str
) -> None:
    write_changes(snap, DEPLOY, line if isinstance(line, (dict, str)) else json.dumps(line))
    err = load_error(snap)
    assert (err.file, err.field) == ("changes.jsonl", field)
    assert text in err.message


# --- derived from signals ----------------------------------------------------------------


def test_a_version_1_snapshot_gets_the_changes_its_signals_show(snap: Path) -> None:
    assert read_json(snap / "snapshot.json")["version"] == 1
    assert load_snapshot(snap).changes == []  # the fixture has no deploy marker
    add_signal(snap, generation())
    (change,) = load_snapshot(snap).changes
    assert (change.service, change.at, change.source) == ("cartservice", T0 + 18 * MIN, "signals")


def test_changes_jsonl_overrides_what_the_signals_show(snap: Path) -> None:
    add_signal(snap, generation())
    write_changes(snap)  # empty: the recorder knows there were none
    assert load_snapshot(snap).changes == []
    write_changes(snap, DEPLOY)
    assert [c.id for c in load_snapshot(snap).changes] == ["cart-run-7"]


def test_derived_changes_are_not_written_but_found_again(snap: Path, tmp_path: Path) -> None:
    add_signal(snap, generation())
    loaded = load_snapshot(snap)
    out = write_snapshot(loaded, tmp_path / "copy")
    assert not (out / "changes.jsonl").exists()
    assert read_json(out / "snapshot.json")["version"] == 1
    assert load_snapshot(out) == loaded
    # a snapshot built with no changes had none, whatever its signals show: it says so
    built = Snapshot(meta=loaded.meta, alert=loaded.alert, signals=loaded.signals)
    assert built.changes == []
    out = write_snapshot(built, tmp_path / "built")
    assert (out / "changes.jsonl").read_text() == ""
    assert load_snapshot(out).changes == [] and read_json(out / "snapshot.json")["version"] == 2


def test_a_stale_changes_file_is_removed_when_rewriting(snap: Path, tmp_path: Path) -> None:
    write_changes(snap, DEPLOY)
    out = write_snapshot(load_snapshot(snap), tmp_path / "copy")
    assert (out / "changes.jsonl").exists()
    again = load_snapshot(out).model_copy(update={"changes": []})
    write_snapshot(again, out)
    assert not (out / "changes.jsonl").exists()


def test_the_neighbourhood_of_a_request_keeps_its_changes(snap: Path) -> None:
    write_changes(snap, DEPLOY, {**DEPLOY, "service": "billing", "id": "b"})
    kept = in_neighbourhood(load_snapshot(snap), ["frontend"])
    # cartservice is in frontend's neighbourhood; billing is placed nowhere in the graph
    assert [c.service for c in kept.changes] == ["cartservice", "billing"]
    topology = read_json(snap / "topology.json")
    topology["edges"].append({"caller": "billing", "callee": "redis"})
    (snap / "topology.json").write_text(json.dumps(topology))
    kept = in_neighbourhood(load_snapshot(snap), ["frontend"])
    assert [c.service for c in kept.changes] == ["cartservice"]
