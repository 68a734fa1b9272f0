"""Publish an analysis to Slack: one message per incident, updated in place afterwards.

:func:`publish_incident` is the one call the service's job runner makes after an analysis is
stored. With no stored reference it posts and returns the new :class:`SlackRef` (store it);
with one it updates that message and says in its thread what changed, so a retry or a
second notification never produces a second top-level post. A :class:`SlackError` means
nothing was posted: record it and call again later (``recover=True`` then, so a post whose
answer was lost is found instead of repeated).

Every post and update links to the full report through :func:`report_url`: a signed,
expiring share link when the service set one up (``SlackPublisher.report_link``), so the
link opens for whoever reads it in Slack, and is fresh again on each update.
"""

from __future__ import annotations

import io
import logging
import time
from datetime import tzinfo
from urllib.parse import quote
from zoneinfo import ZoneInfo

from agent.models import Analysis
from agent.report import confidence_text
from agent.slack.blocks import IncidentView, fallback_text, incident_blocks
from agent.snapshot import Snapshot
from connectors.alertmanager import AlertmanagerWebhook
from connectors.slack import SlackError, SlackPublisher, SlackRef

log = logging.getLogger(__name__)

RECOVERY_WINDOW_S = 3600.0


def alert_labels(alert: AlertmanagerWebhook | None) -> dict[str, str]:
    """Labels that route an incident: the group's common labels over its group labels."""
    if alert is None:
        return {}
    return {**alert.groupLabels, **alert.commonLabels}


def report_url(publisher: SlackPublisher, analysis_id: str) -> str | None:
    """The "full report" link of a post, to the analysis's HTML report page: the
    publisher's (a share link), else a plain link under ``slack.public_url``; None when
    neither is configured."""
    if publisher.report_link is not None:
        return publisher.report_link(analysis_id)
    base = publisher.settings.public_url
    return f"{base.rstrip('/')}/analyses/{quote(analysis_id, safe='')}" if base else None


def incident_view(
    alert: AlertmanagerWebhook | None, report: str | None, tz: tzinfo
) -> IncidentView:
    status = alert.status if alert is not None else "firing"
    return IncidentView(
        status=status,
        severity=alert_labels(alert).get("severity"),
        report_url=report,
        tz=tz,
    )


def incident_key(analysis: Analysis) -> str:
    """The key that marks this incident's post in Slack (message metadata)."""
    return analysis.trigger.group_key or analysis.id


def describe_change(previous: Analysis | None, current: Analysis, resolved: bool) -> str:
    """The thread reply after an update: what is different, in a sentence or three."""
    if resolved:
        return "✅ The alert resolved. The analysis above stays as the record of this incident."
    lines = ["🔁 Re-analysed."]
    before = previous.root_cause if previous else None
    after = current.root_cause
    if after is None or current.insufficient_evidence:
        lines.append("No root cause can be named with confidence now.")
    elif before is None:
        lines.append(f"Root cause now: `{after.service}` ({after.fault_type.value}).")
    elif (before.service, before.fault_type) != (after.service, after.fault_type):
        lines.append(
            f"Root cause changed: `{before.service}` ({before.fault_type.value}) → "
            f"`{after.service}` ({after.fault_type.value})."
        )
    else:
        lines.append(f"Root cause unchanged: `{after.service}` ({after.fault_type.value}).")
    if previous is not None and previous.confidence != current.confidence:
        lines.append(
            f"Confidence {confidence_text(previous.confidence)} → "
            f"{confidence_text(current.confidence)}."
        )
    if previous is not None and previous.window != current.window:
        win = current.window
        lines.append(f"Window now {win.start:%H:%M}–{win.end:%H:%M} UTC.")
    return " ".join(lines)


def chart_png(analysis: Analysis, snapshot: Snapshot) -> bytes:
    """The evidence chart (``agent.chart``) as PNG bytes, ready to upload."""
    from agent.chart import render_evidence_chart  # matplotlib: only when a chart is wanted

    buffer = io.BytesIO()
    render_evidence_chart(analysis, snapshot).savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _upload(publisher: SlackPublisher, ref: SlackRef, analysis: Analysis, png: bytes) -> None:
    """The chart is an extra: a failure is logged, never undoes the post it belongs to."""
    try:
        publisher.upload_chart(ref, png, f"{analysis.id}-evidence.png", "Evidence chart")
    except SlackError as exc:
        log.warning("slack: evidence chart of %s not uploaded: %s", analysis.id, exc.message)


def _post(
    publisher: SlackPublisher,
    channel: str,
    analysis: Analysis,
    view: IncidentView,
    recover: bool,
) -> SlackRef:
    key = incident_key(analysis)
    oldest = time.time() - RECOVERY_WINDOW_S
    if recover and (found := _lookup(publisher, channel, key, oldest)) is not None:
        return found
    text, blocks = fallback_text(analysis, view), incident_blocks(analysis, view)
    try:
        return publisher.post_incident(channel, text, blocks, key)
    except SlackError as exc:
        if not exc.maybe_done:
            raise
        # The answer may have been lost after Slack posted: look before anyone posts again.
        found = _lookup(publisher, channel, key, oldest)
        if found is None:
            raise
        return found


def _lookup(publisher: SlackPublisher, channel: str, key: str, oldest: float) -> SlackRef | None:
    try:
        return publisher.find_incident_post(channel, key, oldest)
    except SlackError as exc:
        log.warning("slack: could not look for an earlier post in %s: %s", channel, exc.message)
        return None


def publish_incident(
    publisher: SlackPublisher,
    analysis: Analysis,
    alert: AlertmanagerWebhook | None,
    stored_ref: SlackRef | None,
    *,
    previous: Analysis | None = None,
    chart: bytes | None = None,
    channel: str | None = None,
    recover: bool = False,
) -> SlackRef | None:
    """Post (``stored_ref`` None) or update the incident message; None when no channel is
    configured for the alert's labels. Raises :class:`SlackError` when Slack refused or
    could not be reached before anything was posted or updated."""
    settings = publisher.settings
    report = report_url(publisher, analysis.id)
    view = incident_view(alert, report, ZoneInfo(settings.timezone))
    png = chart if settings.chart else None
    if stored_ref is None:
        target = channel or settings.channel_for(alert_labels(alert))
        if target is None:
            log.info("slack: no channel for %s (no route matched, no default)", analysis.id)
            return None
        ref = _post(publisher, target, analysis, view, recover)
        if png is not None:
            _upload(publisher, ref, analysis, png)
        return ref
    ref = publisher.update(
        stored_ref, fallback_text(analysis, view), incident_blocks(analysis, view)
    )
    resolved = view.status == "resolved"
    if resolved or previous is None or previous.model_dump() != analysis.model_dump():
        try:
            publisher.reply(ref, describe_change(previous, analysis, resolved))
        except SlackError as exc:
            log.warning("slack: thread reply on %s not posted: %s", ref.ts, exc.message)
        if png is not None and not resolved:
            _upload(publisher, ref, analysis, png)
    return ref
