"""Convert a fault-injection case recorded as CSV into an rca-agent snapshot directory.

Fits RCAEval-style cases: a wide metrics CSV with a ``time`` column (Unix seconds) and one
column per ``<service>_<metric>`` (``cartservice_cpu``, ``cartservice_latency-90``), a file
holding the injection time in Unix seconds, and optionally a logs CSV with ``time``,
``container_name``, ``message`` and ``level`` columns. Standard library only, no rca-agent
import: copy it and adapt the column handling to your dataset.

    python docs/examples/csv_to_snapshot.py case/data.csv out/case-1 \
        --inject-time case/inject_time.txt --logs case/logs.csv \
        --root-cause cartservice --fault cpu_saturation
    rca analyze out/case-1

Format reference: docs/snapshot-format.md.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

# Pods of a Deployment are named <service>-<replicaset hash>-<5 chars>.
POD_NAME = re.compile(r"^(?P<service>[a-z0-9-]+?)-[a-z0-9]{6,10}-[a-z0-9]{5}$")


def owner(name: str) -> tuple[str, str | None]:
    """``cartservice-5d8f7c9b6-x2k4q`` -> (``cartservice``, the pod); ``redis`` -> (it, None)."""
    match = POD_NAME.match(name)
    return (match["service"], name) if match else (name, None)


def number(cell: str) -> float | None:
    """An empty, unparsable, NaN or infinite cell is a missing point (``null``)."""
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def csv_to_signals(path: Path, time_column: str = "time") -> Iterator[dict]:
    """One signal per ``<service>_<metric>`` column of a wide CSV (one row per timestamp)."""
    with path.open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda row: float(row[time_column]))
    rows = [r for i, r in enumerate(rows) if i == 0 or r[time_column] != rows[i - 1][time_column]]
    timestamps = [float(row[time_column]) for row in rows]
    step = timestamps[1] - timestamps[0] if len(timestamps) > 1 else None
    for column in rows[0] if rows else ():
        if column == time_column or "_" not in column:
            continue
        who, _, metric = column.partition("_")  # Kubernetes names have no "_"
        service, pod = owner(who)
        signal = {"service": service, "name": metric, "timestamps": timestamps}
        signal["values"] = [number(row[column]) for row in rows]
        if pod:
            signal["pod"] = pod
        if step:
            signal["resolution_s"] = step
        yield signal  # no "kind": rca-agent infers it from the metric name


def csv_to_logs(path: Path) -> Iterator[dict]:
    """Log lines from a CSV with ``time`` (Unix seconds), ``container_name``, ``message``."""
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            service, pod = owner(row["container_name"])
            record = {"timestamp": float(row["time"]), "service": service}
            record["message"] = row["message"]
            if row.get("level"):
                record["level"] = row["level"]
            if pod:
                record["pod"] = pod
            yield record


def write_jsonl_gz(path: Path, records: Iterator[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, help="wide metrics CSV")
    parser.add_argument("out", type=Path, help="snapshot directory to create")
    parser.add_argument("--inject-time", type=Path, required=True, help="file: Unix seconds")
    parser.add_argument("--logs", type=Path, help="logs CSV")
    parser.add_argument("--root-cause", help="service the fault was injected into")
    parser.add_argument("--fault", default="unknown", help="fault_type for ground_truth.json")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    inject = float(args.inject_time.read_text().split()[0])
    meta = {
        "format": "rca-snapshot",
        "version": 1,
        "id": args.out.name,
        "source": f"converted from {args.metrics}",
        "window": {"incident_start": inject},
    }
    (args.out / "snapshot.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_jsonl_gz(args.out / "signals.jsonl.gz", csv_to_signals(args.metrics))
    if args.logs:
        write_jsonl_gz(args.out / "logs.jsonl.gz", csv_to_logs(args.logs))
    if args.root_cause:
        truth = {"service": args.root_cause, "fault_type": args.fault, "onset": inject}
        (args.out / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return args.out


if __name__ == "__main__":
    main()
