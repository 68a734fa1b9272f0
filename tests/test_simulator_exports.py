"""Raw exports of a scenario: OpenMetrics text for promtool and ECS NDJSON logs."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from agent.models import FaultType
from evals.simulator import Scenario, simulate, write_scenario

SMALL = 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, Path]:
    """One scenario written with its raw exports: a dead dependency, so series have holes."""
    scenario = simulate(10, fault=FaultType.DEPENDENCY_OUTAGE, services=6)
    return scenario, write_scenario(scenario, tmp_path_factory.mktemp("raw") / "incident", raw=True)


# --- exports -------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+) (\d+(?:\.\d+)?)$")


def _parse_openmetrics(
    text: str,
) -> tuple[dict[str, str], list[tuple[str, str, str, float, float]]]:
    """Types by family and ``(family, name, labels, value, timestamp)`` samples, structurally."""
    lines = text.split("\n")
    assert lines[-2:] == ["# EOF", ""], "must end with '# EOF' and a newline"
    types: dict[str, str] = {}
    samples = []
    family = None
    for line in lines[:-2]:
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"family {name} appears twice"
            types[name], family = kind, name
        elif line.startswith(("# UNIT ", "# HELP ")):
            assert line.split(" ")[2] == family
        else:
            match = _SAMPLE.match(line)
            assert match, f"bad sample line {line!r}"
            name, labels, value, stamp = match.groups()
            assert family is not None and name.startswith(family), f"{name} outside {family}"
            samples.append((family, name, labels or "", float(value), float(stamp)))
    return types, samples


def test_openmetrics_export_is_well_formed(exported: tuple[Scenario, Path]) -> None:
    _, root = exported
    types, samples = _parse_openmetrics((root / "raw" / "metrics.om").read_text())
    assert types["http_request_duration_seconds"] == "histogram"
    assert types["http_requests"] == "counter"
    last: dict[tuple[str, str], tuple[float, float]] = {}
    stale: set[str] = set()
    for family, name, labels, value, stamp in samples:
        key = (name, labels)
        if key in last:
            assert stamp > last[key][0], f"timestamps of {key} do not increase"
        if math.isnan(value):
            stale.add(name)
            last[key] = (stamp, last.get(key, (stamp, 0.0))[1])
            continue
        if key in last and (
            types[family] == "counter" or name.endswith(("_bucket", "_count", "_sum"))
        ):
            assert value >= last[key][1], f"counter {key} went down"
        last[key] = (stamp, value)
        if types[family] == "counter":
            assert name.endswith("_total")
    # Staleness marks only where queries read a series as it is, never under rate().
    assert stale and stale <= {
        "container_memory_working_set_bytes",
        "kube_pod_container_status_restarts_total",
        "kube_pod_container_resource_limits",
        "up",
        "kube_deployment_status_observed_generation",
        "db_client_connections_in_use",
        "db_client_connections_pending",
        "kubelet_volume_stats_used_bytes",
    }
    names = {name for _, name, _, _, _ in samples}
    assert {"http_requests_total", "http_request_duration_seconds_bucket"} <= names
    assert {"http_request_duration_seconds_sum", "http_request_duration_seconds_count"} <= names
    assert any('code="500"' in labels and "pod=" in labels for _, _, labels, _, _ in samples)


def test_histogram_buckets_are_cumulative_in_le(exported: tuple[Scenario, Path]) -> None:
    _, root = exported
    _, samples = _parse_openmetrics((root / "raw" / "metrics.om").read_text())
    buckets: dict[tuple[str, float], list[tuple[float, float]]] = {}
    for _, name, labels, value, stamp in samples:
        if name == "http_request_duration_seconds_bucket":
            service = re.search(r'service="([^"]+)"', labels)[1]  # type: ignore[index]
            le = float(re.search(r'le="([^"]+)"', labels)[1])  # type: ignore[index]
            buckets.setdefault((service, stamp), []).append((le, value))
    assert buckets
    for points in buckets.values():
        counts = [count for _, count in sorted(points)]
        assert counts == sorted(counts)
        assert sorted(points)[-1][0] == float("inf")


def test_ecs_log_export_has_the_ecs_fields(exported: tuple[Scenario, Path]) -> None:
    scenario, root = exported
    lines = (root / "raw" / "logs.ndjson").read_text().splitlines()
    assert len(lines) == len(scenario.snapshot.logs)
    for line in lines[:2000]:
        document = json.loads(line)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["@timestamp"])
        assert document["service"]["name"]
        assert document["log"]["level"] in {"debug", "info", "warn", "error", "critical"}
        assert isinstance(document["message"], str)
    with_pod = [json.loads(line) for line in lines if '"pod"' in line]
    assert with_pod and all(d["kubernetes"]["pod"]["name"] for d in with_pod)
    assert any(json.loads(line).get("trace", {}).get("id") for line in lines)


def test_raw_exports_are_skipped_unless_asked_for(
    exported: tuple[Scenario, Path], tmp_path: Path
) -> None:
    scenario, _ = exported
    root = write_scenario(scenario, tmp_path / "plain")
    assert (root / "snapshot.json").is_file()
    assert not (root / "raw").exists()
