"""Analyses whose evidence carries real, long Prometheus graph links (PromQL in the URL):
what the Slack message and thread answers must keep whole."""

from __future__ import annotations

from urllib.parse import urlencode

from conftest import build_analysis

from agent.models import Analysis

PROMETHEUS = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090/graph?"


def promql_link(services: int, tag: str = "") -> str:
    """A Prometheus graph URL for a p99 over ``services`` workloads (~17 characters each)."""
    workloads = "|".join(f"{tag}service-{i:03d}" for i in range(services))
    expr = (
        "histogram_quantile(0.99, sum by (le, destination_workload) "
        '(rate(istio_request_duration_milliseconds_bucket{reporter="source", '
        f'destination_workload=~"{workloads}"}}[1m])))'
    )
    query = {"g0.expr": expr, "g0.tab": "0", "g0.range_input": "30m"}
    return PROMETHEUS + urlencode(query)


def with_links(*links: str, insufficient: bool = False) -> Analysis:
    """The fixture analysis with one metric evidence item (cited by the root cause) per link."""
    base = build_analysis(insufficient=insufficient)
    template = next(ev for ev in base.evidence if ev.id == "M1")
    evidence = [
        template.model_copy(update={"id": f"M{i}", "link": url, "score": 90.0 - i})
        for i, url in enumerate(links, start=1)
    ]
    ids = [ev.id for ev in evidence]
    candidates = [base.candidates[0].model_copy(update={"evidence_ids": ids})]
    return base.model_copy(update={"evidence": evidence, "candidates": candidates})
