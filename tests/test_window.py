"""The window rule (agent/window.py): one frame around an alert's or a request's start, for
the webhook, the API, Slack and the CLI alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import load_settings
from agent.models import Trigger
from agent.service.runner import job_window
from agent.service.schemas import WebhookPayload
from agent.service.webhook import episode_of, job_of
from agent.store.queue import ClaimedJob
from agent.window import Framed, WindowRule, frame, window_line
from connectors.alertmanager import AlertmanagerWebhook

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
RULE = WindowRule()  # lookback 10 min, baseline 60 min, at most 6 h, 30..1100 points


def _well_formed(framed: Framed, rule: WindowRule = RULE) -> None:
    assert framed.start < framed.incident_start < framed.end <= NOW
    if not any("baseline shortened" in note for note in framed.notes):
        assert framed.points >= rule.min_points
    assert framed.points <= rule.max_points
    assert framed.step_s >= (rule.resolution_s or 1)


def test_a_fresh_alert_is_framed_from_the_lookback_before_it_to_now() -> None:
    fired = NOW - timedelta(minutes=2)
    framed = frame(fired, NOW, RULE)
    assert framed.incident_start == fired - timedelta(minutes=10)
    assert framed.start == framed.incident_start - timedelta(minutes=60)
    assert framed.end == NOW
    assert framed.notes == ()
    _well_formed(framed)


def test_an_alert_firing_since_2024_is_analysed_around_its_start_not_over_two_years() -> None:
    """Before: 2024-11-07 -> 2026-12-05 at a 59,656 s step."""
    fired = datetime(2024, 11, 7, 10, 0, tzinfo=UTC)
    framed = frame(fired, NOW, RULE)
    assert framed.incident_start == fired - timedelta(minutes=10)
    assert framed.end == framed.incident_start + timedelta(hours=6)
    assert framed.length == timedelta(hours=8)  # 6 h of incident, a third of it as baseline
    assert framed.step_s <= 30
    _well_formed(framed)
    (note,) = framed.notes
    assert "window cut to 6 h from 2024-11-07 09:50" in note
    assert "(window.max_minutes)" in note and "758 d ago" in note


def test_a_start_in_the_future_is_taken_as_now_and_said() -> None:
    framed = frame(NOW + timedelta(hours=3), NOW, RULE)
    assert framed.end == NOW
    assert framed.incident_start == NOW - timedelta(minutes=10)
    assert "lies after the time of analysis" in framed.notes[0]
    _well_formed(framed)


def test_a_start_equal_to_now_keeps_the_lookback_as_incident() -> None:
    framed = frame(NOW, NOW, RULE)
    assert (framed.incident_start, framed.end) == (NOW - timedelta(minutes=10), NOW)
    assert framed.notes == ()
    _well_formed(framed)


def test_a_start_before_the_data_kept_analyses_the_recent_window_and_says_so() -> None:
    rule = WindowRule(max_age=timedelta(days=15))
    framed = frame(datetime(2024, 11, 7, 10, 0, tzinfo=UTC), NOW, rule)
    assert framed.end == NOW
    assert framed.incident_start == NOW - timedelta(minutes=10)
    (note,) = framed.notes
    assert "started 2024-11-07 10:00 (758 d ago), before the oldest data kept" in note
    assert "window.max_age_days 15" in note and "most recent window" in note
    _well_formed(framed, rule)


def test_a_store_that_keeps_less_than_the_baseline_shortens_it() -> None:
    oldest = NOW - timedelta(minutes=40)
    framed = frame(NOW - timedelta(minutes=5), NOW, RULE, oldest=oldest)
    assert framed.incident_start == NOW - timedelta(minutes=15)
    assert framed.start == oldest
    assert "baseline shortened" in framed.notes[0]


def test_a_short_window_at_a_coarse_resolution_is_widened_to_30_points() -> None:
    rule = WindowRule(
        lookback=timedelta(minutes=5), baseline=timedelta(minutes=10), resolution_s=300
    )
    framed = frame(NOW - timedelta(minutes=1), NOW, rule)
    assert framed.step_s == 300
    assert framed.points == 30
    assert framed.incident_start == NOW - timedelta(minutes=6)  # the split does not move
    _well_formed(framed, rule)


def test_a_request_keeps_its_end_and_a_long_one_is_cut() -> None:
    start = NOW - timedelta(days=2)
    framed = frame(start, NOW, RULE, end=NOW - timedelta(days=1))
    assert framed.end == start - timedelta(minutes=10) + timedelta(hours=6)
    assert frame(start, NOW, RULE, end=start + timedelta(hours=1)).end == start + timedelta(hours=1)


def test_at_1s_resolution_the_lookback_is_at_most_120_samples() -> None:
    framed = frame(NOW, NOW, WindowRule(resolution_s=1))
    assert framed.incident_start == NOW - timedelta(seconds=120)
    assert framed.step_s >= 1


@given(
    age=st.floats(min_value=-3 * 86400, max_value=3 * 365 * 86400),
    asked=st.one_of(st.none(), st.floats(min_value=1, max_value=30 * 86400)),
    resolution=st.one_of(st.none(), st.sampled_from([1.0, 5.0, 15.0, 60.0, 300.0, 3600.0])),
    max_minutes=st.floats(min_value=1, max_value=10_000),
    max_age_days=st.one_of(st.none(), st.floats(min_value=0.01, max_value=400)),
)
def test_every_frame_is_ordered_bounded_and_holds_30_points(
    age: float,
    asked: float | None,
    resolution: float | None,
    max_minutes: float,
    max_age_days: float | None,
) -> None:
    rule = WindowRule(
        max_length=timedelta(minutes=max_minutes),
        max_age=timedelta(days=max_age_days) if max_age_days else None,
        resolution_s=resolution,
    )
    start = NOW - timedelta(seconds=age)
    end = start + timedelta(seconds=asked) if asked is not None else None
    framed = frame(start, NOW, rule, end=end)
    _well_formed(framed, rule)
    assert framed.end - framed.incident_start <= rule.max_length


def test_window_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCA_WINDOW__MAX_MINUTES", "90")
    monkeypatch.setenv("RCA_WINDOW__MAX_AGE_DAYS", "15")
    monkeypatch.setenv("RCA_ENGINE__LOOKBACK_MINUTES", "5")
    rule = WindowRule.from_settings(load_settings())
    assert rule.max_length == timedelta(minutes=90)
    assert rule.max_age == timedelta(days=15)
    assert rule.lookback == timedelta(minutes=5)
    assert rule.baseline == timedelta(minutes=60)


def test_the_report_line_names_start_end_length_and_step() -> None:
    start = datetime(2024, 5, 14, 9, 13, tzinfo=UTC)
    line = window_line(start, start + timedelta(minutes=80), 30)
    assert line == "2024-05-14 09:13:00 → 10:33:00 UTC (80 min, step 30 s)"
    assert window_line(start, start + timedelta(days=1), 120).endswith("(24 h, step 2 min)")


def test_a_webhook_job_keeps_the_alerts_start_and_the_worker_bounds_it() -> None:
    """The webhook stores the trigger's own times; the worker frames them when it runs."""
    from service_support import notification

    payload = WebhookPayload.model_validate(notification(starts="2024-11-07T10:00:00Z"))
    job = job_of(payload, episode_of(payload), NOW)
    assert job.incident_start == datetime(2024, 11, 7, 10, 0, tzinfo=UTC)
    claimed = ClaimedJob(
        id=job.id,
        trigger=job.trigger,
        incident_start=job.incident_start,
        window_end=job.window_end,
        attempts=1,
        alert_payload=payload.model_dump_json(),
    )
    alert = AlertmanagerWebhook.model_validate_json(payload.model_dump_json())
    framed = job_window(claimed, alert, load_settings())
    assert framed.length == timedelta(hours=8)
    assert framed.notes and "window cut" in framed.notes[0]


def test_a_request_job_ends_where_it_asked() -> None:
    start = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)
    claimed = ClaimedJob(
        id="an-1",
        trigger=Trigger(kind="api", services=["frontend"]),
        incident_start=start,
        window_end=start + timedelta(minutes=30),
        attempts=1,
        alert_payload=None,
    )
    framed = job_window(claimed, None, load_settings())
    assert (framed.incident_start, framed.end) == (
        start - timedelta(minutes=10),
        start + timedelta(minutes=30),
    )
