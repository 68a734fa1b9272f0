"""Fuzzing: schemathesis from the served OpenAPI schema, and hypothesis on the webhook.

No generated input may produce a 5xx or a response that breaks the documented schema, and
every notification the webhook accepts must be findable afterwards (no data loss).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from service_support import (
    READ_TOKEN,
    WEBHOOK_TOKEN,
    WRITE_TOKEN,
    LiveServer,
    auth,
    settings_for,
)

from agent.service.app import create_app


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


def test_api_schema_fuzz(live: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
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
            # Cross-field rules (start < end, plausible alert times) are not expressible in
            # JSON Schema: schema-valid bodies may rightly get 422, so that check is off.
            response = case.call_and_validate(
                headers=auth(token), excluded_checks=[positive_data_acceptance]
            )
            assert response.status_code < 500
            if response.status_code == 202:
                body = response.json()
                created = body.get("analysis_id") or body.get("id")
                if created:
                    assert stored(live, created), f"accepted {created} but it is not stored"

        check()
