"""Traces with the OpenTelemetry SDK's in-memory exporter: the stages of an analysis and the
calls that leave the process, in one trace; and no-ops without the ``[otel]`` extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import build_snapshot
from es_double import running
from fastapi.testclient import TestClient
from openai_double import OpenAIDouble, Reply
from prometheus_server import EMPTY_MATRIX, StubPrometheus
from pydantic import SecretStr
from service_support import WEBHOOK_TOKEN, WRITE_TOKEN, auth, notification, settings_for, wait_for
from slack_double import TOKEN, SlackDouble
from summarize_support import answer

from agent import tracing
from agent.engine.pipeline import analyze
from agent.service.app import create_app
from agent.summarize.factory import build_summarizer
from connectors.elasticsearch import ElasticsearchSource
from connectors.prometheus import PrometheusSource
from connectors.settings import ElasticsearchSettings, PrometheusSettings
from connectors.slack import SlackPublisher, build_client
from connectors.slack_settings import SlackSettings

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason="needs the [otel] extra")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.use(provider)
    yield exporter
    tracing.use(previous)
    provider.shutdown()


def _named(exporter: InMemorySpanExporter) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def _parent_name(exporter: InMemorySpanExporter, span: Any) -> str | None:
    by_id = {s.context.span_id: s for s in exporter.get_finished_spans()}
    parent = by_id.get(span.parent.span_id) if span.parent is not None else None
    return parent.name if parent is not None else None


def test_the_stages_and_the_llm_call_are_spans(spans: InMemorySpanExporter) -> None:
    with OpenAIDouble([Reply.answer(json.dumps(answer()))]) as api:
        from agent.config import Settings
        from agent.summarize.settings import SummarizerSettings

        settings = Settings(
            backend="openai",
            summarizer=SummarizerSettings(model="gpt-4o-mini", base_url=api.base_url, api_key="k"),
        )
        analysis = analyze(build_snapshot(), summarizer=build_summarizer(settings))
    named = _named(spans)
    assert {"detect", "rank", "summarize", "chat gpt-4o-mini"} <= set(named)
    chat = named["chat gpt-4o-mini"][0]
    assert _parent_name(spans, chat) == "summarize"
    assert chat.kind is SpanKind.CLIENT
    assert chat.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert chat.attributes["gen_ai.usage.input_tokens"] == analysis.tokens["prompt"]
    detect, rank = named["detect"][0], named["rank"][0]
    assert detect.end_time <= rank.start_time  # consecutive, not nested
    assert detect.attributes["rca.signals"] == len(build_snapshot().signals)


def test_a_stage_that_raises_ends_its_span_as_failed(spans: InMemorySpanExporter) -> None:
    class Broken:
        name = "broken"

        def summarize(self, draft: Any) -> Any:
            raise RuntimeError("model on fire")

    with pytest.raises(RuntimeError):
        analyze(build_snapshot(), summarizer=Broken())  # type: ignore[arg-type]
    summarize = _named(spans)["summarize"][0]
    assert summarize.status.status_code.name == "ERROR"
    assert "model on fire" in summarize.status.description


def test_each_prometheus_query_is_a_client_span_under_the_caller(
    spans: InMemorySpanExporter,
) -> None:
    stub = StubPrometheus(200, EMPTY_MATRIX)
    end = datetime(2024, 5, 14, 11, 0, tzinfo=UTC)
    try:
        source = PrometheusSource(stub.url, PrometheusSettings(headers={"X-Scope-OrgID": "t1"}))
        with tracing.span("collect"):
            source.fetch(end - timedelta(minutes=30), end)
    finally:
        stub.close()
    queries = [s for s in spans.get_finished_spans() if s.name.startswith("prometheus ")]
    assert len(queries) == len(stub.requests) > 5
    assert {_parent_name(spans, s) for s in queries} == {"collect"}  # across the pool threads
    assert all(s.attributes["db.system.name"] == "prometheus" for s in queries)
    assert all("db.query.text" in s.attributes for s in queries)
    assert {h["x-scope-orgid"] for _, h in stub.requests} == {"t1"}  # the tenant header


def test_elasticsearch_and_slack_calls_are_client_spans(spans: InMemorySpanExporter) -> None:
    end = datetime(2024, 5, 14, 11, 0, tzinfo=UTC)
    with running() as double:
        source = ElasticsearchSource(double.url, ElasticsearchSettings(index="logs-*"))
        source.fetch(["checkout"], end - timedelta(minutes=30), end)
    with SlackDouble() as slack:
        settings = SlackSettings(default_channel="C0INCIDENTS")
        client = build_client(slack.api_url, SecretStr(TOKEN), settings)
        SlackPublisher(client, settings).post_incident("C0INCIDENTS", "text", [], "key-1")
    named = _named(spans)
    es = named["elasticsearch request"]
    assert es and all(s.kind is SpanKind.CLIENT for s in es)
    assert es[0].attributes["db.system.name"] == "elasticsearch"
    assert named["slack chat.postMessage"][0].attributes["rpc.method"] == "chat.postMessage"


def test_a_service_analysis_is_one_trace(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(tmp_path))) as client:
        sent = client.post(
            "/v1/alertmanager", json=notification(group="traced"), headers=auth(WEBHOOK_TOKEN)
        )
        analysis_id = sent.json()["analysis_id"]
        wait_for(
            lambda: (
                client.get(f"/v1/analyses/{analysis_id}", headers=auth(WRITE_TOKEN)).json()[
                    "status"
                ]
                == "done"
            ),
            30,
            "the analysis",
        )
        wait_for(lambda: "publish" in _named(spans), 5, "the publish span")
    named = _named(spans)
    root = next(s for s in named["analysis"] if s.attributes["rca.analysis.id"] == analysis_id)
    assert root.attributes["rca.group_key"] == '{}:{alertname="traced"}'
    assert root.attributes["rca.trigger"] == "alert"
    trace_id = root.context.trace_id
    for stage in ("collect", "detect", "rank", "summarize", "publish"):
        (span,) = [s for s in named[stage] if s.context.trace_id == trace_id]
        parent = _parent_name(spans, span)
        assert parent == "analysis", (stage, parent)  # the worker's thread hop keeps the trace


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=60,
    )


BLOCK = "import sys; sys.modules[{!r}] = None\n"


def test_spans_are_no_ops_without_opentelemetry() -> None:
    done = _python(
        BLOCK.format("opentelemetry") + "from agent import tracing\n"
        "with tracing.span('x', {'a': 1}) as s, tracing.Stages() as st:\n"
        "    s.set_attribute('b', 2); st.begin('detect'); st.begin('rank')\n"
        "from agent.engine.pipeline import analyze\n"
        "print('ok')"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_traces_asked_for_without_the_sdk_are_a_warning_not_a_crash() -> None:
    done = _python(
        BLOCK.format("opentelemetry.sdk") + "import logging; logging.basicConfig()\n"
        "from agent import tracing\n"
        "print(tracing.configure({'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:4318'}))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert "pip install 'rca-agent[otel]'" in done.stderr


def test_otel_variables_alone_configure_the_export() -> None:
    assert tracing.exporter_names({}) == []
    assert tracing.exporter_names({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == ["otlp"]
    assert tracing.exporter_names({"OTEL_TRACES_EXPORTER": "none"}) == []
    off = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}
    assert tracing.exporter_names(off) == []
    done = _python(
        "from agent import tracing\n"
        "from agent.config import otel_environment\n"
        "print(tracing.configure(otel_environment()))\n"
        "with tracing.span('collect', {'rca.sources': 'prometheus'}): pass\n"
        "from opentelemetry import trace; trace.get_tracer_provider().shutdown()",
        OTEL_TRACES_EXPORTER="console",
        OTEL_SERVICE_NAME="rca-test",
    )
    assert done.returncode == 0, done.stderr
    first, _, rest = done.stdout.partition("\n")
    assert first == "['console']"
    exported = json.loads(rest)
    assert exported["name"] == "collect"
    assert exported["attributes"] == {"rca.sources": "prometheus"}
    assert exported["resource"]["attributes"]["service.name"] == "rca-test"
