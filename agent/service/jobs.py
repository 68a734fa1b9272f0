"""Workers: threads that claim analysis jobs from the store and run them within a budget.

Retry policy, by kind of failure:

- no source can serve the scope, or it holds no data: not a failure; the job stores an
  Analysis marked insufficient evidence, with ``source_failures`` saying why (see runner);
- the database fails while a job runs (transient): the job goes back to the queue after
  ``retry_backoff_s``; if even that write fails, its lease expires and it is claimed again;
- the process dies mid-analysis (``kill -9``, OOM, lost node): the lease expires (SQLite:
  the next start requeues at once, as SQLite means one process) and the job runs again;
- over the time budget, or an unexpected exception (a bug, a poison input): permanent;
  the job is ``failed`` with the reason, never retried in a loop;
- a job claimed ``max_attempts`` times is failed by the next claim instead of running again
  (``attempts`` stays at ``max_attempts``), so a snapshot that crashes the process every
  time cannot take the service down forever.

The engine is CPU-bound numpy, which releases the GIL in its inner loops, so a few threads
give real concurrency without a process pool. A thread cannot be killed: an analysis over its
budget is abandoned (its result discarded, the job failed) and finishes in the background.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from agent import tracing
from agent.config import Settings
from agent.memory.recall import Recall
from agent.memory.runbooks import RunbookLibrary
from agent.models import Change
from agent.service import logs
from agent.service.metrics import ServiceMetrics
from agent.service.runner import JobResult, chart_material, run_job
from agent.store import changes, outbox, queue
from agent.store import memory as memory_store
from agent.store.memory import Memory
from agent.store.queue import ClaimedJob

log = logging.getLogger("rca.jobs")
T = TypeVar("T")


ANALYSIS_NICENESS = 10


class BudgetExceeded(Exception):
    """An analysis ran past ``service.analysis_budget_s``."""


def within_budget(work: Callable[[], T], budget_s: float) -> T:
    """Run ``work`` in a daemon thread; raise BudgetExceeded if it is not done in time."""
    box: dict[str, object] = {}
    context = contextvars.copy_context()  # the log ids and the trace span go along

    def target() -> None:
        _yield_to_requests()
        try:
            box["value"] = context.run(work)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="rca-analysis", daemon=True)
    thread.start()
    thread.join(budget_s)
    if thread.is_alive():
        raise BudgetExceeded(f"analysis exceeded its time budget of {budget_s:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _yield_to_requests() -> None:
    """Analyses are batch work: lower this thread's CPU priority (Linux: per thread) so that
    the webhook's 202 is not queued behind the engine's number crunching."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ANALYSIS_NICENESS)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _span_attributes(job: ClaimedJob) -> dict[str, str | int | None]:
    trigger = job.trigger
    return {
        "rca.analysis.id": job.id,
        "rca.trigger": trigger.kind,
        "rca.group_key": trigger.group_key,
        "rca.alert_name": trigger.alert_name,
        "rca.attempt": job.attempts,
    }


class WorkerPool:
    """``service.workers`` threads; ``on_done`` callbacks get each stored analysis id (the
    Slack publisher wakes on it; the post itself is already durable in the outbox)."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker,
        metrics: ServiceMetrics,
        on_done: list[Callable[[str], None]] | None = None,
        yield_to: Callable[[], object] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.metrics = metrics
        self.on_done = on_done or []
        # Called before each claim: waits while the webhook is answering a burst
        # (agent.service.lane), so that answers come before analyses.
        self.yield_to = yield_to
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Incident memory and runbooks (agent.memory), set by the app when they are on.
        self.memory: Memory | None = None
        self.runbooks: RunbookLibrary | None = None
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        service = settings.service
        self._lease = timedelta(seconds=service.analysis_budget_s + service.lease_grace_s)

    def start(self) -> None:
        for index in range(self.settings.service.workers):
            thread = threading.Thread(
                target=self._loop, args=(f"{self.identity}:{index}",), name=f"rca-worker-{index}"
            )
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """A job was queued in this process: look now rather than at the next poll."""
        self._wakeup.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming; wait for running analyses a little, then hand the rest back."""
        self._stopping.set()
        self._wakeup.set()
        for thread in self._threads:
            thread.join(timeout_s)
        try:
            with self.sessions.begin() as session:
                released = queue.release_prefix(session, self.identity, utcnow())
            if released:
                log.info("handed %d running job(s) back to the queue", released)
        except SQLAlchemyError as exc:
            log.warning("could not hand jobs back (their leases will expire): %s", exc)

    def _loop(self, owner: str) -> None:
        poll = self.settings.service.poll_interval_s
        while not self._stopping.is_set():
            if self.yield_to is not None:
                self.yield_to()
            try:
                with self.sessions.begin() as session:
                    job = queue.claim(
                        session, owner, self._lease, utcnow(), self.settings.service.max_attempts
                    )
            except SQLAlchemyError as exc:
                log.warning("cannot claim jobs: %s", exc)
                self._stopping.wait(poll)
                continue
            if job is None:
                self._wakeup.wait(poll)
                self._wakeup.clear()
                continue
            if job.exhausted:
                self.metrics.analyses.labels(job.trigger.kind, "failed").inc()
                log.warning("job %s failed: %s", job.id, job.error)
                continue
            try:
                with (
                    logs.bound(analysis_id=job.id, group_key=job.trigger.group_key),
                    tracing.span("analysis", _span_attributes(job)),
                ):
                    self._process(job, owner)
            except SQLAlchemyError as exc:  # storing failed: the lease expires, then retry
                log.warning("job %s: database error, will retry: %s", job.id, exc)

    def _process(self, job: ClaimedJob, owner: str) -> None:
        service = self.settings.service
        try:
            result = within_budget(
                lambda: run_job(
                    job,
                    self.settings,
                    self.reported_changes,
                    self._recall(),
                    self.runbooks,
                    self.memory.embedder if self.memory is not None else None,
                ),
                service.analysis_budget_s,
            )
        except BudgetExceeded as exc:
            self._fail(job, owner, str(exc))
            return
        except SQLAlchemyError as exc:
            when = utcnow() + timedelta(seconds=service.retry_backoff_s)
            with self.sessions.begin() as session:
                queue.retry_later(session, job.id, owner, f"transient: {exc}", when)
            return
        except Exception as exc:
            log.exception("job %s failed", job.id)
            self._fail(job, owner, f"{type(exc).__name__}: {exc}")
            return
        self._store(job, owner, result)

    def _recall(self) -> Recall | None:
        """Memory's recall for the prior, when memory and its prior are on."""
        if self.memory is None or not self.settings.memory.prior:
            return None
        return self.memory.similar

    def reported_changes(self, since: datetime, until: datetime) -> list[Change]:
        """The changes CI/CD reported between ``since`` and ``until`` (runner.ReportedChanges)."""
        with self.sessions.begin() as session:
            found = changes.list_changes(session, since=since, until=until, limit=10_000)
        return [f.change for f in found]

    def _fail(self, job: ClaimedJob, owner: str, reason: str) -> None:
        with self.sessions.begin() as session:
            queue.fail(session, job.id, owner, reason, utcnow())
        self.metrics.analyses.labels(job.trigger.kind, "failed").inc()
        log.warning("job %s failed: %s", job.id, reason)

    def _store(self, job: ClaimedJob, owner: str, result: JobResult) -> None:
        analysis = result.analysis
        material = None
        if self.settings.service.charts and result.snapshot is not None:
            material = chart_material(analysis, result.snapshot)
        chart_data = material.model_dump_json() if material is not None else None
        now = utcnow()
        with tracing.span("publish", {"rca.publish.to": "store"}), self.sessions.begin() as session:
            stored = queue.finish(
                session, job.id, owner, analysis.model_dump_json(), now, chart_data
            )
            if stored and self.memory is not None and result.fingerprint is not None:
                memory_store.store_fingerprint(
                    session, job.id, analysis.created_at, result.fingerprint, now, result.embedding
                )
                if (cutoff := self.memory.cutoff()) is not None:
                    memory_store.purge(session, cutoff)
            if stored and self.settings.slack_bot_token is not None:
                # In the result's transaction: a stored incident analysis always gets its post.
                outbox.enqueue(session, job.id, now)
        if not stored:
            log.warning("job %s: lease lost before the result was stored; discarded", job.id)
            return
        self.metrics.record_analysis(analysis, result.collect_s, result.total_s)
        top = analysis.root_cause.service if analysis.root_cause else "none"
        log.info("analysis stored in %.2f s: root cause %s", result.total_s, top)
        for source, seconds in result.source_s.items():
            self.metrics.source_duration.labels(source).observe(seconds)
        for callback in self.on_done:
            callback(job.id)
