"""Load, validate and write incident snapshots (format: ``docs/snapshot-format.md``).

A snapshot is a plain directory of JSON files so that incidents recorded by other tools can
be converted into it with a few lines of any language. Every validation failure becomes a
:class:`~agent.errors.SnapshotError` naming the file and the field (and the line for JSONL).

Version 2 added ``changes.jsonl`` (deploys, config pushes, scales, flags). A snapshot without
it, every version 1 snapshot among them, gets the changes its signals show
(:func:`agent.changes.changes_from_signals`), so that a deploy marker in ``signals.jsonl`` is
a change wherever the snapshot came from.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from agent.changes import changes_from_signals
from agent.errors import SnapshotError
from agent.models import Change, GroundTruth, LogRecord, Signal, Strict, Topology, Window, utc
from connectors.alertmanager import AlertmanagerWebhook

FORMAT_NAME: Literal["rca-snapshot"] = "rca-snapshot"
FORMAT_VERSION = 2  # 2: changes.jsonl
SUPPORTED_VERSIONS = (1, 2)
# What a snapshot.json without "version" is: it was written for the first format.
UNVERSIONED = 1

META_FILE = "snapshot.json"
ALERT_FILE = "alert.json"
SIGNALS_FILE = "signals.jsonl"
LOGS_FILE = "logs.jsonl"
TOPOLOGY_FILE = "topology.json"
GROUND_TRUTH_FILE = "ground_truth.json"
CHANGES_FILE = "changes.jsonl"
CHANGES_SINCE = 2  # the format version that introduced CHANGES_FILE

# ECS / common log-shipper field names accepted in logs.jsonl, mapped to ours.
_LOG_ALIASES = {
    "@timestamp": "timestamp",
    "time": "timestamp",
    "ts": "timestamp",
    "service.name": "service",
    "log.level": "level",
    "severity": "level",
    "msg": "message",
    "trace.id": "trace_id",
    "kubernetes.pod.name": "pod",
}


class WindowSpec(Strict):
    """The window as written on disk: every bound optional, resolved at analysis time."""

    start: datetime | None = None
    end: datetime | None = None
    incident_start: datetime | None = None

    @field_validator("start", "end", "incident_start")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc(value) if value is not None else None


class SnapshotMeta(Strict):
    format: Literal["rca-snapshot"] = FORMAT_NAME
    version: int = FORMAT_VERSION
    id: str = Field(min_length=1)
    created_at: datetime | None = None
    source: str = ""
    description: str = ""
    window: WindowSpec = Field(default_factory=WindowSpec)


class Snapshot(BaseModel):
    """One incident, in memory: everything the engine needs, no server required.

    ``changes`` are as given (none: there were none); :func:`load_snapshot` fills them from the
    signals (:func:`~agent.changes.changes_from_signals`) only when the directory has no
    ``changes.jsonl``, the case of incidents recorded by other tools.
    """

    meta: SnapshotMeta
    alert: AlertmanagerWebhook | None = None
    signals: list[Signal] = Field(default_factory=list)
    logs: list[LogRecord] = Field(default_factory=list)
    topology: Topology | None = None
    ground_truth: GroundTruth | None = None
    changes: list[Change] = Field(default_factory=list)

    def services(self) -> list[str]:
        """Every service named anywhere in the snapshot, sorted."""
        names = {s.service for s in self.signals} | {r.service for r in self.logs}
        if self.topology:
            names |= set(self.topology.services)
            names |= {e.caller for e in self.topology.edges} | {
                e.callee for e in self.topology.edges
            }
        return sorted(names)

    def window(self, lookback: timedelta = timedelta(minutes=10)) -> Window:
        """Resolve the analysed window.

        Missing bounds come from the data; a missing ``incident_start`` is the alert's first
        ``startsAt`` minus ``lookback``, because alerts fire some minutes after the fault.
        """
        spec = self.meta.window
        times = [t for s in self.signals for t in (s.timestamps[:1] + s.timestamps[-1:])]
        data_start = _from_epoch(min(times)) if times else None
        data_end = _from_epoch(max(times)) if times else None
        if self.logs:
            log_times = [r.timestamp for r in self.logs]
            data_start = min(filter(None, [data_start, min(log_times)]))
            data_end = max(filter(None, [data_end, max(log_times)]))
        start = spec.start or data_start
        end = spec.end or data_end
        if start is None or end is None:
            raise SnapshotError(META_FILE, "window", "no signals or logs to derive the window from")
        incident_start = spec.incident_start
        if incident_start is None:
            if self.alert is None:
                raise SnapshotError(
                    META_FILE, "window.incident_start", f"required when there is no {ALERT_FILE}"
                )
            incident_start = max(self.alert.starts_at - lookback, start + (end - start) / 4)
        try:
            return Window(start=start, end=end, incident_start=incident_start)
        except ValidationError as exc:
            named = {"start": start, "incident_start": incident_start, "end": end}
            bounds = ", ".join(f"{name}={value.isoformat()}" for name, value in named.items())
            raise SnapshotError(META_FILE, "window", f"{_first_error(exc)[1]} ({bounds})") from None


def _from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return loc, err["msg"].removeprefix("Value error, ")


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_json(path: Path) -> Any:
    try:
        with _open(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise SnapshotError(
            path.name, None, f"not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(path.name, None, f"cannot read: {exc}") from None


def _validate(model: type[BaseModel], data: Any, file: str, where: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        loc, msg = _first_error(exc)
        raise SnapshotError(file, f"{where}{loc}".removesuffix(": ") or None, msg) from None


def _jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        with _open(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SnapshotError(
                        path.name, f"line {lineno}", f"not valid JSON ({exc.msg})"
                    ) from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SnapshotError(path.name, None, f"cannot read: {exc}") from None


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name in (
            "service",
            "log",
            "trace",
            "kubernetes",
            "kubernetes.pod",
        ):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _log_fields(record: Any) -> Any:
    """Accept ECS-shaped records (``@timestamp``, ``service.name``, ``log.level``) too."""
    if not isinstance(record, dict) or ("timestamp" in record and "service" in record):
        return record
    flat = _flatten(record)
    ours = {_LOG_ALIASES.get(k, k): v for k, v in flat.items()}
    known = set(LogRecord.model_fields)
    extra = {k: v for k, v in ours.items() if k not in known}
    result = {k: v for k, v in ours.items() if k in known}
    if extra:
        result["fields"] = {**result.get("fields", {}), **extra}
    return result


def _change_fields(record: Any) -> Any:
    """A change line without ``source`` came with the snapshot."""
    if isinstance(record, dict) and "source" not in record:
        return {**record, "source": "snapshot"}
    return record


def load_snapshot(directory: str | Path) -> Snapshot:
    """Read and validate one snapshot directory."""
    root = Path(directory)
    if not root.exists():
        raise SnapshotError(str(root), None, "directory does not exist")
    if not root.is_dir():
        raise SnapshotError(str(root), None, "not a directory")
    meta_path = root / META_FILE
    if not meta_path.is_file():
        raise SnapshotError(META_FILE, None, f"missing in {root} (every snapshot needs one)")
    meta_raw = _read_json(meta_path)
    if isinstance(meta_raw, dict) and meta_raw.get("version") not in (None, *SUPPORTED_VERSIONS):
        raise SnapshotError(
            META_FILE,
            "version",
            f"unsupported version {meta_raw.get('version')!r}; "
            f"this rca-agent reads {', '.join(map(str, SUPPORTED_VERSIONS))}",
        )
    if isinstance(meta_raw, dict) and "version" not in meta_raw:
        meta_raw = {**meta_raw, "version": UNVERSIONED}
    meta = _validate(SnapshotMeta, meta_raw, META_FILE)

    alert = None
    if path := _find(root, ALERT_FILE):
        alert = _validate(AlertmanagerWebhook, _read_json(path), path.name)

    signals: list[Signal] = []
    if path := _find(root, SIGNALS_FILE):
        signals = [_validate(Signal, raw, path.name, f"line {n}: ") for n, raw in _jsonl(path)]

    logs: list[LogRecord] = []
    if path := _find(root, LOGS_FILE):
        logs = [
            _validate(LogRecord, _log_fields(raw), path.name, f"line {n}: ")
            for n, raw in _jsonl(path)
        ]

    topology = None
    if path := _find(root, TOPOLOGY_FILE):
        topology = _validate(Topology, _read_json(path), path.name)

    truth = None
    if path := _find(root, GROUND_TRUTH_FILE):
        truth = _validate(GroundTruth, _read_json(path), path.name)

    if not signals and not logs:
        raise SnapshotError(
            str(root), None, f"holds neither {SIGNALS_FILE} nor {LOGS_FILE}: nothing to analyse"
        )
    if path := _find(root, CHANGES_FILE):
        changes = [
            _validate(Change, _change_fields(raw), path.name, f"line {n}: ")
            for n, raw in _jsonl(path)
        ]
    else:
        changes = changes_from_signals(signals)
    snapshot = Snapshot(
        meta=meta,
        alert=alert,
        signals=signals,
        logs=logs,
        topology=topology,
        ground_truth=truth,
        changes=changes,
    )
    snapshot.window()  # fail now, at load time, if the window cannot be resolved
    return snapshot


def _dump(model: BaseModel) -> str:
    return model.model_dump_json(exclude_none=True, exclude_defaults=False)


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line)
            fh.write("\n")


def write_snapshot(snapshot: Snapshot, directory: str | Path) -> Path:
    """Write ``snapshot`` as a directory that :func:`load_snapshot` reads back unchanged."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    meta = snapshot.meta
    if meta.created_at is None:
        meta = meta.model_copy(update={"created_at": datetime.now(UTC)})
    # The changes the signals show are found again on load (by the reader's own, perhaps
    # better, rules): the file is written only when it says something else ("none" included),
    # and then needs version 2.
    changes = root / CHANGES_FILE
    if snapshot.changes != changes_from_signals(snapshot.signals):
        meta = meta.model_copy(update={"version": max(meta.version, CHANGES_SINCE)})
        _write_lines(changes, (_dump(c) for c in snapshot.changes))
    else:
        for stale in (changes, root / f"{CHANGES_FILE}.gz"):
            stale.unlink(missing_ok=True)
    (root / META_FILE).write_text(meta.model_dump_json(indent=2, exclude_none=True) + "\n")
    if snapshot.alert is not None:
        (root / ALERT_FILE).write_text(
            snapshot.alert.model_dump_json(indent=2, exclude_none=True) + "\n"
        )
    _write_lines(root / SIGNALS_FILE, (_dump(s) for s in snapshot.signals))
    _write_lines(root / LOGS_FILE, (_dump(r) for r in snapshot.logs))
    if snapshot.topology is not None:
        (root / TOPOLOGY_FILE).write_text(snapshot.topology.model_dump_json(indent=2) + "\n")
    if snapshot.ground_truth is not None:
        (root / GROUND_TRUTH_FILE).write_text(
            snapshot.ground_truth.model_dump_json(indent=2, exclude_none=True) + "\n"
        )
    return root


__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "Snapshot",
    "SnapshotMeta",
    "WindowSpec",
    "load_snapshot",
    "utc",
    "write_snapshot",
]
