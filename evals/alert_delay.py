"""Alerts moved in time: how the answers depend on how soon an alert fires
(``rca eval --alert-delay``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import timedelta

from agent.snapshot import Snapshot
from evals.runner import Case


def alert_moved(snapshot: Snapshot, seconds: float) -> Snapshot:
    """The snapshot with its alert firing ``seconds`` later (earlier when negative); one
    given an incident start, or no alert, is returned as it is: its window does not hang on
    the alert."""
    alert = snapshot.alert
    if alert is None or snapshot.meta.window.incident_start is not None or not seconds:
        return snapshot
    by = timedelta(seconds=seconds)
    alerts = [a.model_copy(update={"startsAt": a.startsAt + by}) for a in alert.alerts]
    return snapshot.model_copy(update={"alert": alert.model_copy(update={"alerts": alerts})})


def with_alert_moved(cases: Sequence[Case], seconds: float) -> list[Case]:
    """``cases`` whose snapshots come with their alert moved (:func:`alert_moved`)."""
    return [Case(case.name, functools.partial(_moved, case.load, seconds)) for case in cases]


def _moved(load: Callable[[], Snapshot], seconds: float) -> Snapshot:
    return alert_moved(load(), seconds)
