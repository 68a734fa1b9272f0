"""Elasticsearch failures become one-line SourceErrors naming Elasticsearch, within the
timeout; and the test double refuses what it does not model instead of guessing."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch
from es_double import EsDouble, running
from es_synthetic import START, synthetic_docs

from agent.errors import SourceError
from connectors.elasticsearch import ElasticsearchSource
from connectors.esquery import index_template
from connectors.settings import ElasticsearchSettings, LogFields

END = START + timedelta(minutes=30)


def _source(url: str, **values: Any) -> ElasticsearchSource:
    values.setdefault("index", "logs-*")
    return ElasticsearchSource(url, ElasticsearchSettings.model_validate(values))


def _fails(source: ElasticsearchSource) -> SourceError:
    with pytest.raises(SourceError) as caught:
        source.fetch([], START, END)
    error = caught.value
    assert error.source == "elasticsearch"
    assert str(error).startswith("elasticsearch: ")
    assert "\n" not in str(error)
    return error


def _with_logs(d: EsDouble, n: int) -> EsDouble:
    """Logs mapped by the connector's own index template, as after ``bulk_load``."""
    d.templates["rca-logs"] = index_template(LogFields(), "logs-*")
    d.load("logs-app", list(synthetic_docs(n)))
    return d


@pytest.fixture
def double() -> Iterator[EsDouble]:
    with running() as d:
        yield _with_logs(d, 200)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_unreachable_cluster() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = _fails(_source(f"http://127.0.0.1:{port}", timeout_s=2))
    assert "cannot connect" in error.message and str(port) in error.message


def test_silent_cluster_times_out(silent_port: int) -> None:
    error = _fails(_source(f"http://127.0.0.1:{silent_port}", timeout_s=0.3))
    assert "no answer" in error.message and "0.3 s" in error.message


def test_wrong_api_key_is_a_clear_401() -> None:
    with running(api_key="right") as d:
        _with_logs(d, 20)
        error = _fails(_source(d.url, api_key="wrong"))
        assert "authentication failed (HTTP 401)" in error.message
        assert "RCA_ELASTICSEARCH__API_KEY" in error.message
        fetched = _source(d.url, api_key="right").fetch([], START, END)
        assert fetched.records


def test_basic_auth_is_sent() -> None:
    with running(basic=("reader", "s3cret")) as d:
        _with_logs(d, 20)
        error = _fails(_source(d.url, username="reader", password="wrong"))
        assert "HTTP 401" in error.message
        fetched = _source(d.url, username="reader", password="s3cret").fetch([], START, END)
        assert fetched.records


def test_missing_read_privilege_is_a_clear_403(double: EsDouble) -> None:
    double.deny_read = True
    error = _fails(_source(double.url))
    assert "permission denied (HTTP 403)" in error.message and "logs-*" in error.message


def test_server_error_names_status_and_cause(double: EsDouble) -> None:
    double.fail_status = 500
    error = _fails(_source(double.url))
    assert "HTTP 500" in error.message and "injected failure" in error.message


def test_point_in_time_is_closed_when_a_search_fails(double: EsDouble) -> None:
    double.fail_status, double.fail_on = 500, "/_search"
    _fails(_source(double.url))
    assert "DELETE /_pit" in double.requests
    assert double.pits == {}


def test_a_server_that_is_not_elasticsearch_is_named() -> None:
    class NotElastic(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        do_POST = do_GET

        def _answer(self) -> None:
            data = json.dumps({"id": "x", "hello": "world"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotElastic)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        error = _fails(_source(f"http://127.0.0.1:{server.server_address[1]}"))
        assert "does not answer as Elasticsearch" in error.message
    finally:
        server.shutdown()
        server.server_close()


def test_empty_window_and_missing_url_are_rejected(double: EsDouble) -> None:
    with pytest.raises(SourceError, match="empty window"):
        _source(double.url).fetch([], END, START)
    with pytest.raises(SourceError, match="RCA_ELASTICSEARCH_URL"):
        _source(" , ")


# --- the double itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda es: es.search(index="logs-*", query={"match": {"message": "pool"}}),
            id="match-query",
        ),
        pytest.param(
            lambda es: es.search(
                index="logs-*", size=0, aggs={"n": {"cardinality": {"field": "service.name"}}}
            ),
            id="cardinality-agg",
        ),
        pytest.param(lambda es: es.search(index="logs-*", q="pool"), id="query-string-param"),
        pytest.param(
            lambda es: es.search(index="logs-*", sort=[{"service.name": "asc"}]),
            id="keyword-sort",
        ),
        pytest.param(lambda es: es.cat.indices(), id="unknown-endpoint"),
    ],
)
def test_double_rejects_what_it_does_not_model(double: EsDouble, call: Any) -> None:
    with Elasticsearch(double.url) as es, pytest.raises(BadRequestError) as caught:
        call(es)
    assert caught.value.meta.status == 400
    assert caught.value.error == "parsing_exception"
    assert len(double.errors) == 1
    assert "not modelled" in double.errors[0] or "no handler" in double.errors[0]


def test_double_aggregations_count_honestly(double: EsDouble) -> None:
    docs = list(synthetic_docs(200))
    with Elasticsearch(double.url) as es:
        response = es.search(
            index="logs-app",
            size=0,
            query={"bool": {"must_not": [{"term": {"log.level": "info"}}]}},
            aggs={
                "services": {
                    "terms": {"field": "service.name", "size": 2},
                    "aggs": {
                        "per_minute": {
                            "date_histogram": {"field": "@timestamp", "fixed_interval": "10m"}
                        }
                    },
                }
            },
        )
    kept = [d for d in docs if d.get("log", {}).get("level") != "info"]
    by_service = Counter(d["service"]["name"] for d in kept)
    buckets = response["aggregations"]["services"]["buckets"]
    assert [(b["key"], b["doc_count"]) for b in buckets] == sorted(
        by_service.items(), key=lambda kv: (-kv[1], kv[0])
    )[:2]
    assert response["aggregations"]["services"]["sum_other_doc_count"] == len(kept) - sum(
        b["doc_count"] for b in buckets
    )
    assert response["hits"]["total"] == {"value": len(kept), "relation": "eq"}
    for bucket in buckets:
        assert sum(b["doc_count"] for b in bucket["per_minute"]["buckets"]) == bucket["doc_count"]


def test_double_refuses_aggregating_text_like_elasticsearch() -> None:
    with running() as d:
        d.load("logs-raw", [{"@timestamp": "2024-05-14T10:00:00Z", "app": "billing"}])
        with Elasticsearch(d.url) as es:
            with pytest.raises(BadRequestError) as caught:
                es.search(index="logs-raw", size=0, aggs={"a": {"terms": {"field": "app"}}})
            assert caught.value.error == "illegal_argument_exception"
            keyed = es.search(
                index="logs-raw", size=0, aggs={"a": {"terms": {"field": "app.keyword"}}}
            )
        assert keyed["aggregations"]["a"]["buckets"] == [{"key": "billing", "doc_count": 1}]
        assert d.errors == []


def test_a_spent_deadline_fails_fast(double: EsDouble) -> None:
    with pytest.raises(SourceError, match="out of time"):
        _source(double.url).fetch([], START, END, deadline=0.0)


def test_sampling_stops_at_the_budget_and_keeps_the_counts(double: EsDouble) -> None:
    ticks = iter(range(1_000_000))
    source = ElasticsearchSource(
        double.url,
        ElasticsearchSettings(index="logs-*", budget_s=6, page_size=10),
        clock=lambda: float(next(ticks)),
    )
    fetched = source.fetch([], START, END)
    counted = sum(
        round(sum(v for v in s.values if v) * (s.resolution_s or 0)) for s in fetched.count_signals
    )
    assert 0 < len(fetched.records) < counted
    assert any("sampling stopped at the time budget" in note for note in fetched.notes)
    assert double.pits == {}


def test_rejected_documents_fail_the_bulk_load_with_the_reason() -> None:
    docs = [
        {"@timestamp": "2024-05-14T10:00:00Z", "service": {"name": "a"}, "message": "ok"},
        {"@timestamp": "yesterday", "service": {"name": "a"}, "message": "bad"},
    ]
    with running() as d:
        with pytest.raises(SourceError) as caught:
            _source(d.url).bulk_load(docs, "logs-load")
        assert caught.value.source == "elasticsearch"
        assert "1 of 2 documents rejected" in caught.value.message
        assert "@timestamp" in caught.value.message
        assert "rca-logs-load" in d.templates
        assert d.errors == []
