"""The snapshot format document stays true: its examples load and its converter runs."""

from __future__ import annotations

import importlib.util
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from snapshot_support import (
    CONVERTER,
    DOC,
    MIN,
    T0,
)

from agent.models import ChangeKind, SignalKind
from agent.snapshot import FORMAT_VERSION, SUPPORTED_VERSIONS, load_snapshot

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
        "changes.jsonl",
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
    assert [(c.service, c.kind, c.source) for c in s.changes] == [
        ("frontend", ChangeKind.CONFIG, "snapshot")
    ]


def test_doc_states_the_supported_version() -> None:
    text = DOC.read_text()
    assert f"# Incident snapshot format, version {FORMAT_VERSION}" in text
    readable = ", ".join(map(str, SUPPORTED_VERSIONS))
    assert f"unsupported version N; this rca-agent reads {readable}" in text


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
