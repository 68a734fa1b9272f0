"""The openai backend through the real SDK against the local OpenAI-compatible double.

Asserts the exact request (path, model, messages, response_format, sampling), accounting from
``usage``, retries on 429/500, timeouts, malformed content, the json_schema fallback, Azure
paths, and what reaches the Analysis through the pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import build_analysis, build_snapshot
from openai_double import OpenAIDouble, Reply
from summarize_support import answer

from agent.config import Settings
from agent.engine.pipeline import analyze
from agent.errors import ConfigError, UsageError
from agent.summarize.answer import answer_schema
from agent.summarize.extractive import ExtractiveSummarizer
from agent.summarize.factory import build_summarizer
from agent.summarize.guard import GuardedSummarizer
from agent.summarize.openai_backend import OpenAIBackend, price_of
from agent.summarize.settings import ModelPrice, SummarizerSettings
from agent.summarize.spec import answer_spec

VALID = json.dumps(answer())


@pytest.fixture
def api() -> Iterator[OpenAIDouble]:
    with OpenAIDouble([Reply.answer(VALID)]) as double:
        yield double


def settings_for(api: OpenAIDouble, **summarizer: object) -> Settings:
    values: dict[str, object] = {
        "model": "gpt-4o-mini",
        "base_url": api.base_url,
        "api_key": "sk-test-key",
        "timeout_s": 2.0,
        "max_retries": 2,
    }
    values.update(summarizer)
    return Settings(backend="openai", summarizer=SummarizerSettings.model_validate(values))


def openai_summarizer(api: OpenAIDouble, **summarizer: object) -> GuardedSummarizer:
    built = build_summarizer(settings_for(api, **summarizer))
    assert isinstance(built, GuardedSummarizer)
    return built


def test_exact_request_and_accounting(api: OpenAIDouble) -> None:
    summarizer = openai_summarizer(api)
    draft = build_analysis()
    summary = summarizer.summarize(draft)
    assert summary.fallback is None and summary.backend == "openai"
    [request] = api.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-key"
    body = request.body
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == summarizer.prompt(draft).messages
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    spec = answer_spec(draft, summarizer.prompt(draft))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "rca_summary", "strict": True, "schema": answer_schema(spec)},
    }
    assert body["temperature"] == 0
    assert body["max_tokens"] == 400
    prompt_tokens = len(" ".join(m["content"] for m in body["messages"]).split())
    completion_tokens = len(VALID.split())
    assert summary.tokens == {"prompt": prompt_tokens, "completion": completion_tokens}
    assert summary.cost_usd == pytest.approx(
        (prompt_tokens * 0.15 + completion_tokens * 0.60) / 1e6
    )


def test_json_schema_is_openai_strict() -> None:
    def objects(node: object) -> Iterator[dict[str, object]]:
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield node
            for value in node.values():
                yield from objects(value)
        elif isinstance(node, list):
            for value in node:
                yield from objects(value)

    found = list(objects(answer_schema()))
    assert len(found) >= 3  # answer, root_cause, timeline item
    for node in found:
        assert node["additionalProperties"] is False
        assert set(node["required"]) == set(node["properties"])  # type: ignore[arg-type]
    assert "minLength" not in json.dumps(answer_schema())


def test_request_schema_enumerates_this_incidents_services_and_evidence(
    api: OpenAIDouble,
) -> None:
    openai_summarizer(api).summarize(build_analysis())
    schema = api.requests[0].body["response_format"]["json_schema"]["schema"]
    defs = schema["$defs"]
    # frontend is a candidate without evidence of its own: it could never pass the guard
    assert defs["RootCauseAnswer"]["properties"]["service"]["enum"] == ["payments", "checkout"]
    assert sorted(schema["properties"]["evidence_ids"]["items"]["enum"]) == ["L1", "M1", "M2"]
    timeline_ids = defs["TimelineAnswer"]["properties"]["evidence_id"]["enum"]
    assert sorted(timeline_ids) == ["L1", "M1", "M2"]
    assert "memory_leak" in defs["FaultType"]["enum"]
    assert "enum" not in answer_schema()["properties"]["evidence_ids"]["items"]  # no spec


def test_json_mode_setting(api: OpenAIDouble) -> None:
    openai_summarizer(api, response_format="json_object").summarize(build_analysis())
    assert api.requests[0].body["response_format"] == {"type": "json_object"}


def test_endpoint_rejecting_json_schema_gets_json_mode(api: OpenAIDouble) -> None:
    api.script(
        Reply.error(400, "Invalid parameter: 'response_format' of type 'json_schema' is not "
                    "supported with this model."),
        Reply.answer(VALID),
    )  # fmt: skip
    summarizer = openai_summarizer(api)
    assert summarizer.summarize(build_analysis()).fallback is None
    summarizer.summarize(build_analysis())
    modes = [r.body["response_format"]["type"] for r in api.requests]
    assert modes == ["json_schema", "json_object", "json_object"]


def test_429_is_retried_after_backoff(api: OpenAIDouble) -> None:
    api.script(Reply.error(429, "Rate limit reached", retry_after="0.05"), Reply.answer(VALID))
    summary = openai_summarizer(api).summarize(build_analysis())
    assert summary.fallback is None
    assert len(api.requests) == 2
    assert api.requests[0].raw == api.requests[1].raw


def test_persistent_500_falls_back_after_the_retries(api: OpenAIDouble) -> None:
    api.script(Reply.error(500, "The server had an error while processing your request."))
    summary = openai_summarizer(api, max_retries=1).summarize(build_analysis())
    assert len(api.requests) == 2  # first try + one retry, no repair call for a failed call
    assert summary.backend == "extractive"
    assert summary.fallback is not None
    assert summary.fallback.startswith("openai call failed: HTTP 500")
    assert summary.root_cause is not None and summary.root_cause.service == "payments"


def test_hanging_endpoint_times_out_and_falls_back(api: OpenAIDouble) -> None:
    api.script(Reply.hang(30))
    summary = openai_summarizer(api, timeout_s=0.3, max_retries=0).summarize(build_analysis())
    assert summary.fallback == "openai call failed: timed out after 0.3 s (0 retries)"
    assert len(api.requests) == 1


def test_malformed_content_gets_one_repair_then_falls_back(api: OpenAIDouble) -> None:
    api.script(Reply.answer('{"root_cause": "payments"'), Reply.answer("still not json"))
    summary = openai_summarizer(api).summarize(build_analysis())
    assert len(api.requests) == 2
    repair = api.requests[1].body["messages"]
    assert repair[:2] == api.requests[0].body["messages"]
    assert repair[2] == {"role": "assistant", "content": '{"root_cause": "payments"'}
    assert "rejected" in repair[3]["content"]
    assert summary.backend == "extractive"
    assert summary.fallback is not None and "contains no JSON object" in summary.fallback
    assert summary.tokens["prompt"] > 0 and summary.tokens["completion"] > 0


def test_azure_deployment_path_and_key_header(api: OpenAIDouble) -> None:
    summarizer = openai_summarizer(
        api, azure_endpoint=api.url, model="rca-gpt4o", azure_api_version="2024-10-21"
    )
    assert summarizer.summarize(build_analysis()).fallback is None
    request = api.requests[0]
    assert request.path == "/openai/deployments/rca-gpt4o/chat/completions?api-version=2024-10-21"
    assert request.headers["api-key"] == "sk-test-key"


def test_pipeline_records_backend_tokens_and_fallback(api: OpenAIDouble) -> None:
    summarizer = openai_summarizer(api)
    snapshot = build_snapshot(with_truth=False)
    engine_only = analyze(snapshot, summarizer=ExtractiveSummarizer())
    top = engine_only.candidates[0]
    own = next(i for i in top.evidence_ids)
    valid = answer(
        root_cause={
            "service": top.service,
            "fault_type": top.fault_type.value,
            "summary": f"{top.service} is failing [{own}].",
        },
        evidence_ids=[own],
        timeline=[],
        alternatives=[],
    )
    api.script(Reply.answer(json.dumps(valid)))
    analysis = analyze(snapshot, summarizer=summarizer)
    assert analysis.backend == "openai" and analysis.summarizer_fallback is None
    assert analysis.summary == f"{top.service} is failing [{own}]."
    assert analysis.tokens["prompt"] > 0
    api.script(Reply.error(500))
    failed = analyze(snapshot, summarizer=openai_summarizer(api, max_retries=0))
    assert failed.backend == "extractive"
    assert failed.summarizer_fallback == "openai call failed: HTTP 500: error 500"
    assert failed.summary == engine_only.summary


def test_factory_specs_and_errors(api: OpenAIDouble) -> None:
    settings = settings_for(api)
    assert build_summarizer(settings, "extractive").name == "extractive"
    assert build_summarizer(settings, "openai").name == "openai"
    override = build_summarizer(settings, "openai:gpt-4o")
    assert isinstance(override, GuardedSummarizer)
    assert isinstance(override.backend, OpenAIBackend)
    assert override.backend.settings.model == "gpt-4o"
    with pytest.raises(UsageError, match="unknown summarizer backend 'claude'"):
        build_summarizer(settings, "claude")
    no_key = Settings(summarizer=SummarizerSettings())
    with pytest.raises(ConfigError, match="RCA_SUMMARIZER__API_KEY"):
        build_summarizer(no_key, "openai")


def test_price_table_prefers_exact_then_longest_prefix() -> None:
    prices = {
        "gpt-4o": ModelPrice(input=2.5, output=10),
        "gpt-4o-mini": ModelPrice(input=0.15, output=0.6),
    }
    assert price_of("gpt-4o-mini-2024-07-18", prices) == prices["gpt-4o-mini"]
    assert price_of("gpt-4o-2024-11-20", prices) == prices["gpt-4o"]
    assert price_of("llama3", prices) is None
