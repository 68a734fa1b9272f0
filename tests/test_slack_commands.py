"""``/rca`` argument parsing, time ranges and the usage reply."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.errors import UsageError
from agent.slack.commands import CommandError, RcaCommand, parse_command

KNOWN = ["checkout", "payments", "frontend", "cart", "recommendation"]
NOW = datetime(2024, 5, 14, 14, 50, tzinfo=UTC)


def test_service_alone_means_the_last_30_minutes() -> None:
    command = parse_command("checkout", KNOWN)
    assert command == RcaCommand(("checkout",))
    assert command.window(NOW, UTC) == (NOW - timedelta(minutes=30), NOW)


@pytest.mark.parametrize(
    ("text", "span"),
    [("checkout last 30m", 30 * 60), ("checkout last 2h", 7200), ("checkout last 90 s", 90)],
)
def test_last_takes_a_duration(text: str, span: int) -> None:
    start, end = parse_command(text, KNOWN).window(NOW, UTC)
    assert end == NOW and (end - start).total_seconds() == span


def test_since_and_a_question() -> None:
    command = parse_command("payments since 14:05 why are charges failing?", KNOWN)
    assert command.since == time(14, 5) and command.question == "why are charges failing?"
    assert command.window(NOW, UTC) == (datetime(2024, 5, 14, 14, 5, tzinfo=UTC), NOW)


def test_clock_times_are_read_in_the_configured_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # UTC+2 in May
    start, end = parse_command("cart 16:05-16:40", KNOWN).window(NOW, berlin)
    assert (start, end) == (
        datetime(2024, 5, 14, 14, 5, tzinfo=UTC),
        datetime(2024, 5, 14, 14, 40, tzinfo=UTC),
    )


def test_a_future_clock_time_means_yesterday_and_ranges_wrap_midnight() -> None:
    just_after_midnight = datetime(2024, 5, 15, 0, 10, tzinfo=UTC)
    start, end = parse_command("cart 23:50-00:05", KNOWN).window(just_after_midnight, UTC)
    assert start == datetime(2024, 5, 14, 23, 50, tzinfo=UTC)
    assert end == datetime(2024, 5, 15, 0, 5, tzinfo=UTC)
    start, end = parse_command("cart since 23:00", KNOWN).window(just_after_midnight, UTC)
    assert (start, end) == (datetime(2024, 5, 14, 23, 0, tzinfo=UTC), just_after_midnight)


def test_private_flag_anywhere_and_case_insensitive_services() -> None:
    command = parse_command("--private Checkout,payments last 1h", KNOWN)
    assert command.private and command.services == ("checkout", "payments")


def test_typo_suggests_close_services_and_lists_the_known_ones() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("paymnets last 30m", KNOWN)
    error = caught.value
    assert isinstance(error, UsageError) and error.suggestions == ["payments"]
    reply = str(error)
    assert "Unknown service `paymnets`" in reply and "Did you mean `payments`?" in reply
    assert "Known services: `cart`, `checkout`, `frontend`, `payments`, `recommendation`" in reply
    assert "*Usage:* `/rca <service>" in reply


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "Tell me which service"),
        ("help", "Tell me which service"),
        ("checkout last", "`last` needs a duration"),
        ("checkout last soon", "`last` needs a duration like 30m, 2h or 1d, not `soon`"),
        ("checkout last 30d", "at most 7d"),
        ("checkout since noon", "`since` needs a clock time"),
        ("checkout since 25:00", "`since` needs a clock time"),
        ("checkout 14:05-", "is not a time range"),
        ("zzz", "Unknown service `zzz`"),
    ],
)
def test_bad_arguments_explain_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(CommandError, match="Usage") as caught:
        parse_command(text, KNOWN)
    assert problem in caught.value.problem


def test_unknown_catalog_accepts_any_service() -> None:
    assert parse_command("anything-goes last 5m", []).services == ("anything-goes",)
