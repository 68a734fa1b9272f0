"""The Alertmanager webhook that pages someone: it fires on a symptom, not on the cause.

Usually an entry service or a direct caller of the faulty service breaches its SLO first;
sometimes the faulty service itself. The alert fires some minutes after the onset (seconds,
for 1 s data), and sometimes groups two services under one alert name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import numpy as np

from agent.models import FaultType
from connectors.alertmanager import AlertmanagerWebhook
from evals.simulator.plan import FaultPlan, Symptom
from evals.simulator.telemetry import Telemetry
from evals.simulator.topology import ServiceGraph

_ERROR_ALERTS = ("HighErrorRate", "ErrorBudgetBurn", "HTTP5xxRateHigh")
_LATENCY_ALERTS = ("HighLatencyP99", "LatencySLOBreach", "SlowResponses")
_DROP_ALERTS = ("RequestRateDrop", "LowTraffic", "TrafficBelowForecast")
_RECEIVERS = ("oncall-pager", "slack-sre", "pagerduty-critical", "team-platform")
_EXTERNAL_URLS = ("http://alertmanager.monitoring.svc:9093", "https://alertmanager.example.com")


def _strength(telemetry: Telemetry, name: str, symptom: Symptom) -> tuple[float, float]:
    """Peak extra error ratio and peak p99 slowdown (relative to the typical p99)."""
    typical = float(np.nanmedian(telemetry.services[name].latency[2])) or 1e-3
    return float(np.max(symptom.errors)), float(np.max(symptom.latency[2])) / typical


def _noticeable(telemetry: Telemetry, name: str, symptom: Symptom) -> bool:
    errors, slowdown = _strength(telemetry, name, symptom)
    return errors > 0.01 or slowdown > 0.3


def _target(
    graph: ServiceGraph,
    telemetry: Telemetry,
    plan: FaultPlan,
    symptoms: dict[str, Symptom],
    rng: np.random.Generator,
) -> list[str]:
    """Services that alert: noticeable symptoms, entries and direct callers preferred."""
    noticed = [name for name, s in symptoms.items() if _noticeable(telemetry, name, s)]
    if plan.fault is FaultType.DEPENDENCY_OUTAGE:
        noticed = [n for n in noticed if n != plan.service] or graph.callers(plan.service)
    noticed = noticed or [plan.service]
    entries = [n for n in noticed if not graph.callers(n) and n != plan.service]
    callers = [n for n in noticed if n in graph.callers(plan.service)]
    draw = rng.random()
    if entries and draw < 0.5:
        pool = entries
    elif callers and draw < 0.8:
        pool = callers
    elif plan.service in noticed and draw >= 0.8:
        pool = [plan.service]
    else:
        pool = noticed
    first = pool[int(rng.integers(len(pool)))]
    others = [n for n in noticed if n != first]
    if others and rng.random() < 0.3:
        return [first, others[int(rng.integers(len(others)))]]
    return [first]


def _detection_delay(resolution: int, rng: np.random.Generator) -> float:
    if resolution <= 1:
        return float(rng.uniform(20, 120))
    if resolution <= 10:
        return float(rng.uniform(30, 240))
    return float(rng.uniform(60, 360))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _common(alerts: list[dict[str, Any]], key: str) -> dict[str, str]:
    """What Alertmanager puts in ``commonLabels``/``commonAnnotations``: pairs all alerts share."""
    first: dict[str, str] = alerts[0][key]
    return {k: v for k, v in first.items() if all(a[key].get(k) == v for a in alerts)}


def build_alert(
    graph: ServiceGraph,
    telemetry: Telemetry,
    plan: FaultPlan,
    symptoms: dict[str, Symptom],
    rng: np.random.Generator,
) -> AlertmanagerWebhook:
    timeline = telemetry.timeline
    services = _target(graph, telemetry, plan, symptoms, rng)
    symptom = symptoms.get(services[0], symptoms[plan.service])
    errors, slowdown = _strength(telemetry, services[0], symptom)
    by_errors = errors * 20 >= slowdown or slowdown <= 0.3
    alertname = (_ERROR_ALERTS if by_errors else _LATENCY_ALERTS)[int(rng.integers(3))]
    delay = _detection_delay(timeline.resolution, rng)
    starts = min(timeline.time(plan.onset) + delay, timeline.end - timeline.resolution)
    return _payload(
        graph,
        services,
        alertname,
        starts,
        timeline.resolution,
        lambda service: _annotations(alertname, service, by_errors),
        lambda service: _generator_url(service, by_errors),
        rng,
    )


def build_drop_alert(
    graph: ServiceGraph, telemetry: Telemetry, service: str, onset: int, rng: np.random.Generator
) -> AlertmanagerWebhook:
    """The page when requests stop arriving: a traffic alert on the service that lost them."""
    timeline = telemetry.timeline
    alertname = _DROP_ALERTS[int(rng.integers(len(_DROP_ALERTS)))]
    delay = _detection_delay(timeline.resolution, rng)
    starts = min(timeline.time(onset) + delay, timeline.end - timeline.resolution)
    annotations = {
        "summary": f"Request rate of {service} dropped",
        "description": f"{service} receives less than half its usual requests for 5 minutes.",
        "runbook_url": f"https://runbooks.example.com/alerts/{alertname.lower()}",
    }
    expr = (
        f'sum(rate(http_requests_total{{service="{service}"}}[5m])) < 0.5 * '
        f'sum(rate(http_requests_total{{service="{service}"}}[5m] offset 1d))'
    )
    url = f"http://prometheus.monitoring.svc:9090/graph?g0.expr={quote(expr)}&g0.tab=1"
    return _payload(
        graph,
        [service],
        alertname,
        starts,
        timeline.resolution,
        lambda _: annotations,
        lambda _: url,
        rng,
    )


def _payload(
    graph: ServiceGraph,
    services: list[str],
    alertname: str,
    starts: float,
    resolution: int,
    annotations: Callable[[str], dict[str, str]],
    generator_url: Callable[[str], str],
    rng: np.random.Generator,
) -> AlertmanagerWebhook:
    severity = ("critical", "page", "warning")[int(rng.integers(3))]
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": alertname,
                "service": service,
                "severity": severity,
                "namespace": graph.namespace,
            },
            "annotations": annotations(service),
            "startsAt": _iso(starts + offset * resolution),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": generator_url(service),
            "fingerprint": f"{int(rng.integers(0, 2**63)):016x}",
        }
        for offset, service in enumerate(services)
    ]
    payload = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": _RECEIVERS[int(rng.integers(len(_RECEIVERS)))],
        "groupLabels": {"alertname": alertname},
        "commonLabels": _common(alerts, "labels"),
        "commonAnnotations": _common(alerts, "annotations"),
        "externalURL": _EXTERNAL_URLS[int(rng.integers(len(_EXTERNAL_URLS)))],
        "alerts": alerts,
    }
    return AlertmanagerWebhook.model_validate(payload)


def _annotations(alertname: str, service: str, by_errors: bool) -> dict[str, str]:
    if by_errors:
        summary = f"High 5xx error rate on {service}"
        description = f"More than 5% of requests to {service} failed over the last 5 minutes."
    else:
        summary = f"p99 latency of {service} above SLO"
        description = f"p99 latency of {service} has been above 1s for 5 minutes."
    runbook = f"https://runbooks.example.com/alerts/{alertname.lower()}"
    return {"summary": summary, "description": description, "runbook_url": runbook}


def _generator_url(service: str, by_errors: bool) -> str:
    if by_errors:
        expr = (
            f'sum(rate(http_requests_total{{service="{service}",code=~"5.."}}[5m])) / '
            f'sum(rate(http_requests_total{{service="{service}"}}[5m])) > 0.05'
        )
    else:
        expr = (
            f"histogram_quantile(0.99, sum by (le) (rate("
            f'http_request_duration_seconds_bucket{{service="{service}"}}[5m]))) > 1'
        )
    return f"http://prometheus.monitoring.svc:9090/graph?g0.expr={quote(expr)}&g0.tab=1"
