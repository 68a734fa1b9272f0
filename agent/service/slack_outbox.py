"""The publisher: a thread in ``rca serve`` that delivers the Slack outbox.

It claims pending posts (:mod:`agent.store.outbox`, the same lease and ``SKIP LOCKED``
discipline as analysis jobs), posts or updates the incident's one message with
:func:`agent.slack.publish.publish_incident`, and records the outcome:

- delivered: the message's (channel, ts) is stored with the incident; the next analysis or
  the resolution of the incident updates that message;
- Slack down, 5xx, connection refused, 429 beyond ``slack.max_retry_after_s``: the post stays
  pending and is retried after ``slack.outbox_backoff_s``, doubling up to
  ``slack.outbox_max_backoff_s``, and never before a 429's ``Retry-After`` (up to an hour);
  the pending row survives restarts;
- Slack refused for good (``channel_not_found``, ``invalid_auth``...): ``failed``, with the
  error, logged; the analysis is served by the API regardless;
- no channel routes the alert: ``skipped``.

A claim after a lost one (``attempts > 1``) first looks for the post in the channel's
history (``recover``), so a post whose answer was lost is updated, not repeated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from agent import tracing
from agent.config import Settings
from agent.models import Analysis
from agent.service.charts import evidence_chart
from agent.service.metrics import ServiceMetrics
from agent.slack.publish import publish_incident, report_url
from agent.slack.seen import seen_before_text
from agent.store import outbox
from agent.store.memory import Memory
from agent.store.outbox import ClaimedPost
from connectors.alertmanager import AlertmanagerWebhook
from connectors.slack import SlackError, SlackPublisher, SlackRef

log = logging.getLogger("rca.slack")

MAX_RETRY_AFTER_S = 3600.0
"""The longest 429 ``Retry-After`` the outbox honours; a longer one is retried after this."""


def lease_for(settings: Settings) -> timedelta:
    """Long enough for every call of one delivery (history, post, upload, reply) to use all
    its retries and timeouts, so a live publisher never loses its lease mid-delivery."""
    slack = settings.slack
    per_call = (slack.timeout_s + slack.backoff_s * 2**slack.retries) * (slack.retries + 1)
    per_call += slack.max_retry_after_s * slack.retries
    return timedelta(seconds=6 * per_call + 30)


class SlackOutbox:
    """One thread delivering incident posts; :meth:`deliver_next` is one step of it."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker,
        metrics: ServiceMetrics,
        publisher: SlackPublisher,
        identity: str,
        clock: Callable[[], datetime],
        yield_to: Callable[[], object] | None = None,
        memory: Memory | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.metrics = metrics
        self.publisher = publisher
        self.identity = identity
        self.owner = f"{identity}:slack"
        self.clock = clock
        self.yield_to = yield_to  # waits while the webhook answers a burst (see WorkerPool)
        self.memory = memory  # for the "Seen before" reply under a new incident post
        self._lease = lease_for(settings)
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rca-slack", daemon=True)
        self._thread.start()

    def wake(self, _analysis_id: str | None = None) -> None:
        """New work was written in this process: deliver now rather than at the next poll.
        Takes the analysis id so it can be a ``WorkerPool`` ``on_done`` callback."""
        self._wakeup.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            with self.sessions.begin() as session:
                outbox.release_prefix(session, self.identity, self.clock())
        except SQLAlchemyError as exc:
            log.warning("could not hand Slack posts back (their leases will expire): %s", exc)

    def _loop(self) -> None:
        poll = self.settings.service.poll_interval_s
        while not self._stopping.is_set():
            if self.yield_to is not None:
                self.yield_to()
            try:
                worked = self.deliver_next()
            except SQLAlchemyError as exc:  # the lease expires; the row is claimed again
                log.warning("slack outbox: database error: %s", exc)
                self._stopping.wait(poll)
                continue
            except Exception:  # a bug must not silently end posting for this process
                log.exception("slack outbox: unexpected error")
                self._stopping.wait(poll)
                continue
            if not worked:
                self._wakeup.wait(poll)
                self._wakeup.clear()

    def deliver_next(self) -> bool:
        """Claim and deliver one due post; False when none is due."""
        with self.sessions.begin() as session:
            post = outbox.claim(session, self.owner, self._lease, self.clock())
        if post is None:
            return False
        try:
            with tracing.span(
                "publish", {"rca.publish.to": "slack", "rca.incident.id": post.incident_id}
            ):
                self._deliver(post)
        except SlackError as exc:
            self._failed(post, exc)
        except Exception as exc:  # a bug or a poison row: stop retrying it, keep serving
            log.exception("slack: delivering incident %s failed", post.incident_id)
            self._settle(post, outbox.FAILED, f"{type(exc).__name__}: {exc}", "failed")
        return True

    def _deliver(self, post: ClaimedPost) -> None:
        analysis = Analysis.model_validate_json(post.analysis_json)
        previous = Analysis.model_validate_json(post.shown_json) if post.shown_json else None
        alert = AlertmanagerWebhook.model_validate_json(post.alert_payload)
        alert = alert.model_copy(update={"status": post.incident_status})
        stored = SlackRef(post.channel, post.ts) if post.channel and post.ts else None
        ref = publish_incident(
            self.publisher,
            analysis,
            alert,
            stored,
            previous=previous,
            recover=post.attempts > 1,
        )
        if ref is None:
            self._settle(post, outbox.SKIPPED, "no channel routes this alert", "no_channel")
            return
        with self.sessions.begin() as session:
            kept = outbox.delivered(session, post, self.owner, ref.channel, ref.ts, self.clock())
        if not kept:
            log.warning("slack: lease on incident %s lost during delivery", post.incident_id)
        self.metrics.slack_posts.labels("updated" if stored else "posted").inc()
        changed = previous is None or previous.id != analysis.id
        if changed and post.incident_status == "firing" and post.has_chart:
            self._upload_chart(ref, analysis)
        if stored is None and post.incident_status == "firing":
            self._seen_before(ref, analysis)

    def _seen_before(self, ref: SlackRef, analysis: Analysis) -> None:
        """Under a new incident post: the similar past incidents and what fixed them. An
        extra like the chart: a failure is logged and loses only this reply."""
        k = self.settings.memory.similar
        if self.memory is None or k <= 0:
            return
        try:
            fp = self.memory.fingerprint_of(analysis.id)
            embedding = self.memory.embedding_of(analysis.id)
            past = (
                self.memory.similar(fp, k, exclude=analysis.id, embedding=embedding)
                if fp is not None
                else []
            )
        except SQLAlchemyError as exc:
            log.warning("slack: no seen-before reply for %s: %s", analysis.id, exc)
            return
        tz = ZoneInfo(self.publisher.settings.timezone)
        text = seen_before_text(past, tz, lambda aid: report_url(self.publisher, aid))
        if text is None:
            return
        try:
            self.publisher.reply(ref, text)
        except SlackError as exc:
            log.warning("slack: seen-before reply on %s not posted: %s", ref.ts, exc.message)

    def _upload_chart(self, ref: SlackRef, analysis: Analysis) -> None:
        """After the post, so the words reach people first; a failure only loses the chart."""
        if not self.publisher.settings.chart:
            return
        png = evidence_chart(self.sessions, analysis.id)
        if png is None:
            return
        try:
            self.publisher.upload_chart(ref, png, f"{analysis.id}-evidence.png", "Evidence chart")
        except SlackError as exc:
            log.warning("slack: evidence chart of %s not uploaded: %s", analysis.id, exc.message)

    def _failed(self, post: ClaimedPost, exc: SlackError) -> None:
        if not exc.retryable:
            log.warning("slack: giving up on incident %s: %s", post.incident_id, exc.message)
            self._settle(post, outbox.FAILED, exc.message, "failed")
            return
        slack = self.settings.slack
        delay = min(slack.outbox_max_backoff_s, slack.outbox_backoff_s * 2 ** (post.attempts - 1))
        if exc.retry_after_s is not None:  # Slack said when: no sooner (a bogus hour is capped)
            delay = max(delay, min(exc.retry_after_s, MAX_RETRY_AFTER_S))
        retry_at = self.clock() + timedelta(seconds=delay)
        log.info(
            "slack: incident %s not delivered (%s); retrying in %.0f s",
            post.incident_id,
            exc.message,
            delay,
        )
        self._settle(post, outbox.PENDING, exc.message, "retry", retry_at)

    def _settle(
        self,
        post: ClaimedPost,
        state: str,
        error: str,
        result: str,
        retry_at: datetime | None = None,
    ) -> None:
        with self.sessions.begin() as session:
            outbox.settle(session, post, self.owner, state, error, self.clock(), retry_at)
        self.metrics.slack_posts.labels(result).inc()
