"""Redaction: a corpus of planted secrets in logs and labels never reaches the request body the
OpenAI double receives; without redaction the same corpus does (so the test can fail)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import INCIDENT, POD, build_analysis, build_snapshot
from openai_double import OpenAIDouble, Reply
from summarize_support import answer

from agent.config import Settings, load_settings
from agent.engine.pipeline import analyze
from agent.errors import ConfigError
from agent.models import Analysis, LogRecord
from agent.snapshot import Snapshot
from agent.summarize.factory import build_summarizer
from agent.summarize.guard import GuardedSummarizer
from agent.summarize.openai_backend import OpenAIBackend
from agent.summarize.redact import Redactor
from agent.summarize.settings import SummarizerSettings

# (kind, text as it appears in a log line or label, the secret part that must never leave)
PLANTED: list[tuple[str, str, str]] = [
    ("aws_access_key", "using key AKIAIOSFODNN7EXAMPLE for s3", "AKIAIOSFODNN7EXAMPLE"),
    (
        "aws_secret",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("bearer", "upstream rejected Authorization: Bearer abc123def456ghi789", "abc123def456ghi789"),
    ("basic", "sent header Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    (
        "jwt",
        "invalid session eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
        ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
    ),
    (
        "url_password",
        "connect failed postgres://payments:hunter2pass@db.internal:5432/payments",
        "hunter2pass",
    ),
    ("kv_password", "login failed password=S3cr3tPassw0rd! user=svc", "S3cr3tPassw0rd!"),
    ("kv_api_key", "retrying with api_key=abcd1234efgh5678", "abcd1234efgh5678"),
    ("header_token", "forwarded X-Auth-Token: 9f8e7d6c5b4a3921", "9f8e7d6c5b4a3921"),
    ("json_secret", 'config {"client_secret": "topsecretvalue99"}', "topsecretvalue99"),
    (
        "private_key",
        "loaded -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7xQ2kZ9vHn3Y\n"
        "-----END RSA PRIVATE KEY-----",
        "MIIEpAIBAAKCAQEA7xQ2kZ9vHn3Y",
    ),
    ("openai_key", "llm key sk-proj-AbCdEf1234567890GhIjKlMnOp", "AbCdEf1234567890GhIjKlMnOp"),
    ("github_token", "clone with ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "ghp_AbCdEfGhIjKlMn"),
    ("slack_token", "notify xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012"),
    ("generic_key", "X-Signature Zx8Kq2Lm9Np4Rt7Vw1Yb3Cd6Fg0Hj5Ks8Lm2Qa7W", "Zx8Kq2Lm9Np4Rt7Vw1Yb"),
    ("email", "receipt bounced for jane.doe@example.com", "jane.doe@example.com"),
]
SECRETS = [secret for _, _, secret in PLANTED]


@pytest.mark.parametrize(("kind", "text", "secret"), PLANTED, ids=[p[0] for p in PLANTED])
def test_default_patterns_remove_each_secret(kind: str, text: str, secret: str) -> None:
    redacted = Redactor()(text)
    assert secret not in redacted
    assert "[REDACTED:" in redacted


def test_redaction_keeps_ordinary_telemetry() -> None:
    text = (
        "GET /api/v1/orders/123 took 812 ms trace=4bf92f3577b34da6a3ce929d0e0e4736 "
        "pod=payments-7d9f-x2 status=503 tokens_used=12"
    )
    assert Redactor()(text) == text


def test_operator_patterns_and_invalid_ones() -> None:
    redact = Redactor([r"cust-\d{8}"])
    assert redact("order for cust-12345678 failed") == "order for [REDACTED:custom] failed"
    with pytest.raises(ConfigError, match=r"summarizer.redact_patterns"):
        load_settings(summarizer={"redact_patterns": ["(unclosed"]})


def _draft_with_secrets() -> Analysis:
    """The conftest analysis plus one log evidence item per planted secret (sample and
    template), a secret in a series label and one in the alert name."""
    draft = build_analysis()
    base = draft.evidence[1]
    planted = [
        base.model_copy(update={"id": f"L{n}", "sample": text, "template": text, "score": 1.0})
        for n, (_, text, _) in enumerate(PLANTED, start=2)
    ]
    labelled = draft.evidence[0].model_copy(
        update={"description": "memory_rss_bytes{dsn=" + PLANTED[5][1].split()[-1] + "} up"}
    )
    trigger = draft.trigger.model_copy(update={"alert_name": "HighErrors " + PLANTED[-1][1]})
    evidence = [labelled, *draft.evidence[1:], *planted]
    return draft.model_copy(update={"evidence": evidence, "trigger": trigger})


def _secret_snapshot() -> Snapshot:
    """The conftest incident; payments logs each planted line as a new error during it, and
    its memory series carries a connection string label."""
    snapshot = build_snapshot(with_truth=False)
    logs = list(snapshot.logs)
    for n, (_, text, _) in enumerate(PLANTED):
        logs += [
            LogRecord(
                timestamp=INCIDENT + timedelta(minutes=3, seconds=30 * k + n),
                service="payments",
                level="ERROR",
                message=text,
                pod=POD,
            )
            for k in range(12)
        ]
    signals = list(snapshot.signals)
    signals[0] = signals[0].model_copy(update={"labels": {"dsn": PLANTED[5][1].split()[-1]}})
    return snapshot.model_copy(update={"logs": logs, "signals": signals})


@pytest.fixture
def api() -> Iterator[OpenAIDouble]:
    with OpenAIDouble([Reply.answer(json.dumps(answer()))]) as double:
        yield double


def _openai(api: OpenAIDouble, redactor: Redactor | None = None) -> GuardedSummarizer:
    settings = Settings(
        summarizer=SummarizerSettings(model="gpt-4o-mini", base_url=api.base_url, api_key="k")
    )
    if redactor is None:
        built = build_summarizer(settings, "openai")
        assert isinstance(built, GuardedSummarizer)
        return built
    return GuardedSummarizer(
        OpenAIBackend(settings.summarizer), prompt_tokens=3000, redact=redactor
    )


def _leaks(api: OpenAIDouble) -> list[str]:
    """Secrets found in the raw request bodies or in their decoded message contents."""
    parts = []
    for request in api.requests:
        parts.append(request.raw.decode())
        parts += [m["content"] for m in request.body["messages"]]
    sent = "\n".join(parts)
    return [s for s in SECRETS if s in sent]


def test_no_planted_secret_reaches_the_endpoint(api: OpenAIDouble) -> None:
    _openai(api, Redactor(defaults=False)).summarize(_draft_with_secrets())
    assert _leaks(api) == SECRETS  # the control: every secret is in the bundle
    api.requests.clear()
    _openai(api).summarize(_draft_with_secrets())
    assert len(api.requests) == 1
    assert _leaks(api) == []
    assert "[REDACTED:" in api.requests[0].raw.decode()


def test_no_secret_from_snapshot_logs_or_labels_reaches_the_endpoint(api: OpenAIDouble) -> None:
    snapshot = _secret_snapshot()
    analyze(snapshot, summarizer=_openai(api, Redactor(defaults=False)))
    leaked_without = _leaks(api)
    assert len(leaked_without) >= len(SECRETS) - 2  # the engine surfaces (almost) all of them
    api.requests.clear()
    analysis = analyze(snapshot, summarizer=_openai(api))
    assert api.requests and _leaks(api) == []
    assert analysis.candidates[0].service == "payments"


def test_operator_pattern_applies_to_the_request(api: OpenAIDouble) -> None:
    draft = build_analysis()
    evidence = [draft.evidence[0], draft.evidence[1].model_copy(update={"sample": "cust-12345678"})]
    settings = Settings(
        summarizer=SummarizerSettings(
            base_url=api.base_url, api_key="k", redact_patterns=[r"cust-\d{8}"]
        )
    )
    build_summarizer(settings, "openai").summarize(draft.model_copy(update={"evidence": evidence}))
    body = api.requests[0].raw.decode()
    assert "cust-12345678" not in body and "[REDACTED:custom]" in body
