"""Where an incident is looked for: the call-graph neighbourhood of the services it hurts.

An alert names where it hurts, not where it started; so does an ad-hoc request (``/rca
storefront``, ``POST /v1/analyses``, ``rca analyze --service``). The cause of what a service
shows is the service or something it depends on, so a request keeps the named services,
everything they call (transitively) and their direct callers, whose client-side waits name
their callees; the engine then ranks causes anywhere in it, with the named services as its
focus (as an alert's). Without a call graph that places the named services, nothing is ruled
out. Pure functions over snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from agent.models import Topology
from agent.snapshot import Snapshot
from agent.window import LOOKBACK_SAMPLES, resolution_of
from connectors.alertmanager import AlertmanagerWebhook

REQUEST_ALERT = "RcaRequest"


def neighbourhood(topology: Topology | None, named: Sequence[str]) -> frozenset[str] | None:
    """The named services, everything they call (transitively) and their direct callers.

    Faults travel from a callee up to its callers, so the cause of what a service shows is
    the service or something it depends on; its direct callers stay as witnesses (their
    client-side waits name the callee). None when the graph places none of the named
    services: then nothing can be ruled out.
    """
    if topology is None or not topology.edges:
        return None
    callees: dict[str, list[str]] = {}
    callers: dict[str, list[str]] = {}
    for edge in topology.edges:
        callees.setdefault(edge.caller, []).append(edge.callee)
        callers.setdefault(edge.callee, []).append(edge.caller)
    known = [s for s in named if s in callees or s in callers]
    if not known:
        return None
    keep = set(named)
    pending = list(known)
    while pending:
        for callee in callees.get(pending.pop(), ()):
            if callee not in keep:
                keep.add(callee)
                pending.append(callee)
    keep.update(caller for s in known for caller in callers.get(s, ()))
    return frozenset(keep)


def in_neighbourhood(snapshot: Snapshot, focus: Sequence[str]) -> Snapshot:
    """The snapshot's series, logs, changes and edges of ``focus``'s neighbourhood; services
    the graph does not place at all stay (a graph is rarely complete)."""
    keep = neighbourhood(snapshot.topology, focus)
    if keep is None or snapshot.topology is None:
        return snapshot
    placed = {name for e in snapshot.topology.edges for name in (e.caller, e.callee)}

    def kept(service: str) -> bool:
        return service in keep or service not in placed

    edges = [e for e in snapshot.topology.edges if e.caller in keep and e.callee in keep]
    topology = Topology(services=sorted(s for s in snapshot.services() if kept(s)), edges=edges)
    return snapshot.model_copy(
        update={
            "signals": [s for s in snapshot.signals if kept(s.service)],
            "logs": [r for r in snapshot.logs if kept(r.service)],
            "changes": [c for c in snapshot.changes if kept(c.service)],
            "topology": topology,
        }
    )


def request_alert(
    services: Sequence[str], since: datetime, question: str | None = None
) -> AlertmanagerWebhook:
    """An ad-hoc request as the alert it amounts to: the named services hurt since ``since``.

    The engine reads where it hurts and since when from a snapshot's alert; a request that
    states both gives it the same two facts, and a recorded request replays with them. It is
    marked as a request (``alertname`` ``RcaRequest``, receiver ``rca-agent``), never sent.
    """
    stamp = since.isoformat()
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": REQUEST_ALERT, "service": service},
            "annotations": {"summary": question or f"ad-hoc request: {service}"},
            "startsAt": stamp,
            "fingerprint": f"request:{service}:{stamp}",
        }
        for service in services
    ]
    return AlertmanagerWebhook.model_validate(
        {
            "version": "4",
            "groupKey": f"rca-request:{','.join(services)}:{stamp}",
            "status": "firing",
            "receiver": "rca-agent",
            "groupLabels": {"alertname": REQUEST_ALERT},
            "commonLabels": {"alertname": REQUEST_ALERT},
            "alerts": alerts,
        }
    )


def as_request(snapshot: Snapshot, focus: Sequence[str], lookback: timedelta) -> Snapshot:
    """A recorded incident replayed as an ad-hoc request on ``focus`` (``rca analyze DIR
    --service``, a ``snapshot_dir`` source): the named services are where it hurts, since
    the recorded alert's start, in place of the recorded alert's services; the incident start
    stays where the recording puts it."""
    if snapshot.alert is None:
        return in_neighbourhood(snapshot, focus)
    incident_start = snapshot.meta.window.incident_start
    if incident_start is None:
        back = timedelta(seconds=min(lookback.total_seconds(), _lookback_cap(snapshot)))
        incident_start = snapshot.window(back).incident_start
    window = snapshot.meta.window.model_copy(update={"incident_start": incident_start})
    meta = snapshot.meta.model_copy(update={"window": window})
    alert = request_alert(focus, snapshot.alert.starts_at)
    return in_neighbourhood(snapshot.model_copy(update={"meta": meta, "alert": alert}), focus)


def _lookback_cap(snapshot: Snapshot) -> float:
    resolution = resolution_of(snapshot.signals) or 60.0
    return LOOKBACK_SAMPLES * resolution
