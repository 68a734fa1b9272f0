"""``POST /v1/alertmanager``: persist the notification and its job, answer 202.

No analysis work happens in the request: it computes the episode's idempotency key, writes
one transaction (episode + job) and wakes a worker. The key is the group key plus the sorted
(fingerprint, startsAt) pairs of the firing alerts (of all alerts for a resolved
notification), so Alertmanager's repeats of a notification map to one episode and one
analysis, while a new alert joining the group starts a new episode.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import IntegrityError

from agent.models import Trigger
from agent.service.auth import require_webhook
from agent.service.problems import RETRY_AFTER_S, ApiError, known_query_only
from agent.service.schemas import ErrorBody, WebhookAccepted, WebhookPayload
from agent.service.state import ServiceState, service_state
from agent.store.intake import Episode, NewJob, Outcome, record_firing, record_resolved
from connectors.alertmanager import Alert

router = APIRouter(tags=["alertmanager"], dependencies=[Depends(known_query_only)])
_RACE_RETRIES = 3
State = Annotated[ServiceState, Depends(service_state)]


def _fingerprint(alert: Alert) -> str:
    """Alertmanager's fingerprint, or a stable one from the labels when a sender omits it."""
    if alert.fingerprint:
        return alert.fingerprint
    labels = json.dumps(alert.labels, sort_keys=True)
    return "labels:" + hashlib.sha256(labels.encode()).hexdigest()[:16]


def episode_of(payload: WebhookPayload) -> Episode:
    firing = payload.status == "firing"
    alerts = [a for a in payload.alerts if a.status == "firing" or not firing]
    alerts = alerts or payload.alerts  # "firing" with every alert resolved: take them all
    pairs = sorted({(_fingerprint(a), a.startsAt.isoformat()) for a in alerts})
    material = json.dumps([payload.groupKey, pairs])
    key = hashlib.sha256(material.encode()).hexdigest()
    return Episode(
        key=key,
        id="in-" + key[:20],
        group_key=payload.groupKey,
        alert_name=payload.alert_name,
        alerts=pairs,
        starts_at=min(a.startsAt for a in alerts),
        payload=payload.model_dump_json(),
    )


def job_of(payload: WebhookPayload, episode: Episode, now: datetime) -> NewJob:
    """The analysis of an episode: where its first firing alert began, as of ``now``.

    The job keeps the trigger's own times (``incident_start``: the alert's start,
    ``window_end``: when it was notified); the worker frames the analysed window around them
    when it runs (:func:`agent.window.frame`: lookback, baseline, maximum length, retention),
    so that an alert firing since last year is not analysed over a year.
    """
    trigger = Trigger(
        kind="alert",
        alert_name=payload.alert_name or None,
        services=payload.services(),
        group_key=payload.groupKey,
    )
    return NewJob(
        id="an-" + episode.key[:20],
        trigger=trigger,
        incident_start=episode.starts_at,
        window_end=now,
        services=trigger.services,
    )


def receive(state: ServiceState, payload: WebhookPayload) -> WebhookAccepted:
    """Record one notification durably; see the module docstring."""
    now = state.clock()
    episode = episode_of(payload)
    job = job_of(payload, episode, now)
    for _ in range(_RACE_RETRIES):
        try:
            with state.sessions.begin() as session:
                if payload.status == "firing":
                    outcome = record_firing(session, episode, job, now)
                else:
                    outcome = record_resolved(session, episode, now)
            break
        except IntegrityError:  # a concurrent delivery created the episode first: re-read
            continue
    else:  # not the client's fault: tell Alertmanager to retry
        raise ApiError(
            503,
            "conflict",
            f"episode {episode.id} kept conflicting with concurrent deliveries; retry",
            {"Retry-After": RETRY_AFTER_S},
        )
    if outcome is Outcome.NEW:
        state.workers.wake()
    if outcome is Outcome.RESOLVED:
        state.wake_slack()
    queued = payload.status == "firing" and outcome in (Outcome.NEW, Outcome.DUPLICATE)
    analysis_id = job.id if queued else None
    return WebhookAccepted(outcome=outcome.value, incident_id=episode.id, analysis_id=analysis_id)


_SAMPLE = {
    "version": "4",
    "groupKey": '{}:{alertname="rca-warm-up"}',
    "status": "firing",
    "receiver": "rca-agent",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "rca-warm-up", "service": "rca-warm-up"},
            "startsAt": "2024-01-01T00:00:00Z",
            "fingerprint": "rca-warm-up",
        }
    ],
}


def warm_up(state: ServiceState) -> None:
    """Record a sample notification twice (new, then duplicate) and roll it back.

    The first notification otherwise compiles the intake's SQL and opens a connection (about
    50 ms), and in a burst the notifications behind it wait for that too. Nothing is stored.
    """
    payload = WebhookPayload.model_validate(_SAMPLE)
    now = state.clock()
    episode = episode_of(payload)
    job = job_of(payload, episode, now)
    session = state.sessions()
    try:
        record_firing(session, episode, job, now)
        record_firing(session, episode, job, now)
    finally:
        session.rollback()
        session.close()


@router.post(
    "/v1/alertmanager",
    operation_id="receiveAlertmanagerWebhook",
    status_code=202,
    response_model=WebhookAccepted,
    summary="Alertmanager webhook (payload version 4)",
    responses={
        401: {"model": ErrorBody, "description": "missing or unknown webhook token"},
        413: {"model": ErrorBody, "description": "body over service.max_body_bytes"},
        422: {"model": ErrorBody, "description": "not an Alertmanager v4 payload"},
        503: {"model": ErrorBody, "description": "database unavailable: retry"},
    },
    dependencies=[Depends(require_webhook)],
)
async def alertmanager(
    payload: WebhookPayload,
    request: Request,
    state: Annotated[ServiceState, Depends(service_state)],
) -> WebhookAccepted:
    """Durably record the notification and queue its analysis; 202 once committed."""
    accepted = await state.intake.run(receive, state, payload)
    request.state.webhook_result = accepted.outcome
    return accepted
