"""Kind inference from arbitrary metric names and units."""

from __future__ import annotations

import pytest

from agent.engine.detect.kinds import infer_kind
from agent.models import SignalKind


@pytest.mark.parametrize(
    ("name", "unit", "kind"),
    [
        ("container_cpu_usage_seconds_total", "", SignalKind.RESOURCE),
        ("cpu", "", SignalKind.RESOURCE),
        ("mem", "", SignalKind.RESOURCE),
        ("container_memory_working_set_bytes", "bytes", SignalKind.RESOURCE),
        ("latency-90", "", SignalKind.LATENCY),
        ("http.server.request.duration", "s", SignalKind.LATENCY),
        ("http_requests_total", "", SignalKind.TRAFFIC),
        ("workload", "", SignalKind.TRAFFIC),
        ("SyscallWrite", "", SignalKind.TRAFFIC),  # work done, not a mystery (nor a cause)
        ("syscall_read_total", "", SignalKind.TRAFFIC),
        ("error", "", SignalKind.ERRORS),
        ("http_5xx_ratio", "", SignalKind.ERRORS),
        ("node_netstat_tcp_retrans_segs", "", SignalKind.ERRORS),
        ("kube_pod_container_status_restarts_total", "", SignalKind.CHANGE),
        ("app_build_info_version", "", SignalKind.CHANGE),
        ("container_cpu_cfs_throttled_periods_total", "", SignalKind.SATURATION),
        ("hikaricp_connections_pending", "", SignalKind.SATURATION),
        ("disk_used_percent", "%", SignalKind.SATURATION),
        ("mystery_gauge", "ms", SignalKind.LATENCY),
        ("mystery_gauge", "", SignalKind.OTHER),
    ],
)
def test_kind_is_inferred_from_name_and_unit(name: str, unit: str, kind: SignalKind) -> None:
    assert infer_kind(name, unit) is kind
