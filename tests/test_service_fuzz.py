"""Fuzzing: schemathesis from the served OpenAPI schema, with every check on.

No generated input may produce a 5xx or a response that breaks the documented schema; data
the schema calls valid must be accepted (``positive_data_acceptance``), and every
notification or request accepted must be findable afterwards (no data loss).

The schema states what JSON Schema can (no NUL in text, the years an alert may start in);
the few rules it cannot state (``start`` before ``end``, a range of at most 7 days, ``start``
or ``last``, a ``cursor`` this server handed out, a reported change's time near the clock)
are :func:`follows_the_rules`: schema-valid cases that break them are not generated as
valid data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.generation.meta import ParameterLocation
from service_support import (
    READ_TOKEN,
    WEBHOOK_TOKEN,
    WRITE_TOKEN,
    LiveServer,
    auth,
    settings_for,
)

from agent.service.app import create_app
from agent.service.schemas import EARLIEST, LATEST, MAX_RANGE


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    server = LiveServer(create_app(settings_for(tmp)))
    yield server
    server.stop()


def token_for(path: str, method: str) -> str:
    if path == "/v1/alertmanager":
        return WEBHOOK_TOKEN
    return WRITE_TOKEN if method.upper() == "POST" else READ_TOKEN


def stored(live: LiveServer, analysis_id: str) -> bool:
    response = httpx.get(f"{live.url}/v1/analyses/{analysis_id}", headers=auth(READ_TOKEN))
    return response.status_code == 200


UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def invalid_on_the_wire(case: Any) -> bool:
    """Whether a negative case is still invalid as sent. The test sends the right token
    whatever header was generated. A query is text on the wire: a value generated as an
    array, an object, a number or null is sent as text that may well be valid (a one-item
    array as its item, an empty one or an object as nothing), so only a query negative in
    its text (a pattern, a format) says something."""
    negative = {
        location for location, info in case.meta.components.items() if info.mode.is_negative
    }
    negative.discard(ParameterLocation.HEADER)
    if negative == {ParameterLocation.QUERY}:
        return all(isinstance(v, str) for v in (case.query or {}).values())
    return bool(negative)


def follows_the_rules(_: Any, case: Any) -> bool:
    """A positive case that keeps the rules JSON Schema cannot state (see the docstring); a
    negative one that is still invalid as sent (:func:`invalid_on_the_wire`)."""
    if not case.meta.generation.mode.is_positive:
        return invalid_on_the_wire(case)
    if case.method.upper() == "GET" and case.path == "/v1/analyses":
        return "cursor" not in (case.query or {})
    body = case.body if isinstance(case.body, dict) else {}
    if case.method.upper() == "POST" and case.path == "/v1/changes":
        # a reported change lies between the retention (90 days) and the clock skew (300 s)
        at, now = _time(body.get("at")), datetime.now(UTC)
        return at is not None and now - timedelta(days=89) < at < now + timedelta(seconds=250)
    if case.method.upper() != "POST" or case.path != "/v1/analyses":
        return True
    start, end = _time(body.get("start")), _time(body.get("end"))
    if ("start" in body) != ("end" in body) or ("start" in body and "last" in body):
        return False
    if "start" in body:
        if start is None or end is None or not EARLIEST <= start < end <= LATEST:
            return False
        if end - start > MAX_RANGE:
            return False
    if body.get("last") is not None:
        found = re.fullmatch(r"(\d{1,6})([smhd])", str(body["last"]))
        seconds = int(found.group(1)) * UNIT_S[found.group(2)] if found else None
        return seconds is not None and seconds <= MAX_RANGE.total_seconds()
    return True


def test_api_schema_fuzz(live: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    schema.hook("filter_case")(follows_the_rules)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9

    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=cases)
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            token = token_for(case.path, case.method)
            response = case.call_and_validate(headers=auth(token))  # every check
            assert response.status_code < 500
            if response.status_code == 202:
                body = response.json()
                created = body.get("analysis_id") or body.get("id")
                if created:
                    assert stored(live, created), f"accepted {created} but it is not stored"

        check()
