"""The Elasticsearch log connector against the test double (and a real cluster when
``RCA_TEST_ELASTICSEARCH_URL`` is set): counts, caps, priorities, paging, mapping, loading."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from es_backend import Backend, backend_params, open_backend
from es_synthetic import START, synthetic_docs

from agent.models import LogRecord, SignalKind
from connectors.elasticsearch import ElasticsearchSource
from connectors.logcounts import canonical_level
from evals.simulator.scenario import simulate, write_scenario

WINDOW_END = START + timedelta(minutes=40)


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from open_backend(request.param)


@pytest.fixture
def double_backend() -> Iterator[Backend]:
    """For what only the double can show or inject: open contexts, shard failures."""
    yield from open_backend("double")


def _when(doc: dict) -> float:
    return datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00")).timestamp()


def _window_docs(docs: list[dict], start=START, end=WINDOW_END) -> list[dict]:
    return [d for d in docs if start.timestamp() <= _when(d) < end.timestamp()]


def _level(doc: dict) -> str:
    return canonical_level(doc.get("log", {}).get("level"))


def test_counts_equal_a_brute_force_count(backend: Backend) -> None:
    docs = list(synthetic_docs(3000, services=4))
    backend.load("logs", docs)
    fetched = backend.source(count_points=120).fetch([], START, WINDOW_END)

    expected: Counter[tuple[str, str, float]] = Counter()
    step = fetched.count_signals[0].resolution_s
    assert step is not None
    for doc in _window_docs(docs):
        bucket = _when(doc) // step * step
        expected[(doc["service"]["name"], _level(doc), bucket)] += 1
    got: Counter[tuple[str, str, float]] = Counter()
    for signal in fetched.count_signals:
        assert signal.name == "log_lines"
        for t, rate in zip(signal.timestamps, signal.values, strict=True):
            assert rate is not None
            if rate:
                got[(signal.service, signal.labels["level"], t)] += round(rate * step)
    assert got == expected
    kinds = {s.labels["level"]: s.kind for s in fetched.count_signals}
    assert kinds["ERROR"] == SignalKind.ERRORS
    assert kinds["CRITICAL"] == SignalKind.ERRORS
    assert kinds["INFO"] != SignalKind.ERRORS


def test_services_filter_limits_counts_and_samples(backend: Backend) -> None:
    docs = list(synthetic_docs(2000, services=4))
    backend.load("logs", docs)
    fetched = backend.source().fetch(["svc-01", "svc-03"], START, WINDOW_END)
    assert {s.service for s in fetched.count_signals} == {"svc-01", "svc-03"}
    assert {r.service for r in fetched.records} == {"svc-01", "svc-03"}
    wanted = [d for d in _window_docs(docs) if d["service"]["name"] in ("svc-01", "svc-03")]
    assert len(fetched.records) == len(wanted)


def test_cap_is_respected_and_error_lines_come_first(backend: Backend) -> None:
    docs = list(synthetic_docs(4000, services=4))
    backend.load("logs", docs)
    cap = 400
    fetched = backend.source(sample_cap=cap).fetch([], START, WINDOW_END)

    in_window = _window_docs(docs)
    per_service = Counter(d["service"]["name"] for d in in_window)
    sampled = Counter(r.service for r in fetched.records)
    for service, total in per_service.items():
        assert sampled[service] == min(total, cap)
    big = max(per_service, key=per_service.__getitem__)
    flagged = [
        d
        for d in in_window
        if d["service"]["name"] == big and _level(d) in ("ERROR", "CRITICAL", "WARN")
    ]
    assert len(flagged) < cap < per_service[big]
    kept = Counter((r.timestamp, r.message) for r in fetched.records if r.service == big)
    for doc in flagged:
        record = LogRecord(
            timestamp=doc["@timestamp"], service=big, message=doc["message"], level="INFO"
        )
        assert kept[(record.timestamp, record.message)] >= 1
    assert any(big in note and f"{cap:,} of {per_service[big]:,}" in note for note in fetched.notes)


def test_capped_error_lines_are_spread_over_the_window(backend: Backend) -> None:
    docs = [
        {
            "@timestamp": (START + timedelta(seconds=4 * i)).isoformat().replace("+00:00", "Z"),
            "service": {"name": "noisy"},
            "log": {"level": "error" if i % 2 else "info"},
            "message": f"failure {i}",
        }
        for i in range(600)
    ]
    backend.load("logs", docs)
    fetched = backend.source(sample_cap=80).fetch([], START, WINDOW_END)
    assert len(fetched.records) == 80
    assert {r.level for r in fetched.records} == {"ERROR"}
    quarter = (WINDOW_END - START) / 4
    assert min(r.timestamp for r in fetched.records) < START + quarter
    assert max(r.timestamp for r in fetched.records) > WINDOW_END - quarter


def test_search_after_pages_return_every_line_once(backend: Backend) -> None:
    docs = list(synthetic_docs(700, services=3))
    backend.load("logs", docs)
    fetched = backend.source(page_size=23).fetch([], START, WINDOW_END)
    expected = Counter((d["trace"]["id"], d["message"]) for d in _window_docs(docs))
    got = Counter((r.trace_id, r.message) for r in fetched.records)
    assert got == expected
    assert len(fetched.records) > 10 * 23
    if backend.double is not None:
        pages = [r for r in backend.double.requests if r == "POST /_search"]
        assert len(pages) > len(fetched.records) // 23


def test_point_in_time_is_closed_after_fetch(double_backend: Backend) -> None:
    backend = double_backend
    assert backend.double is not None
    backend.load("logs", synthetic_docs(300))
    backend.source().fetch([], START, WINDOW_END)
    requests = backend.double.requests
    assert any(r.endswith("/_pit") and r.startswith("POST") for r in requests)
    assert "DELETE /_pit" in requests
    assert backend.double.pits == {}


def test_field_mapping_override_per_index_pattern(backend: Backend) -> None:
    ecs = list(synthetic_docs(200, services=2))
    backend.load("ecs", ecs)
    custom = [
        {
            "ts": (START + timedelta(seconds=10 * i)).isoformat().replace("+00:00", "Z"),
            "app": "legacy-billing",
            "severity": "ERROR" if i % 4 == 0 else "INFO",
            "msg": f"invoice {i} failed",
            "host": "billing-0",
        }
        for i in range(120)
    ]
    custom_index = backend.load_raw("custom", custom)
    source = backend.source(
        index=f"{backend.prefix}-ecs,{custom_index}",
        index_fields={
            custom_index: {
                "timestamp": "ts",
                "service": "app.keyword",
                "level": "severity.keyword",
                "message": "msg",
                "pod": "host.keyword",
            }
        },
    )
    fetched = source.fetch([], START, WINDOW_END)
    billing = [r for r in fetched.records if r.service == "legacy-billing"]
    assert len(billing) == len(custom)
    assert {r.pod for r in billing} == {"billing-0"}
    assert Counter(r.level for r in billing)["ERROR"] == sum(1 for i in range(120) if i % 4 == 0)
    assert {r.service for r in fetched.records} >= {"svc-00", "svc-01", "legacy-billing"}
    errors = next(
        s
        for s in fetched.count_signals
        if s.service == "legacy-billing" and s.labels["level"] == "ERROR"
    )
    assert round(sum(v * errors.resolution_s for v in errors.values if v)) == 30


def test_bulk_load_round_trip_of_a_simulated_incident(backend: Backend, tmp_path: Path) -> None:
    scenario = simulate(3)
    root = write_scenario(scenario, tmp_path / "sim", raw=True)
    lines = (root / "raw" / "logs.ndjson").read_text().splitlines()
    source = backend.source(sample_cap=100_000)
    loaded = source.bulk_load((json.loads(line) for line in lines), backend.index("sim"))
    assert loaded == len(lines) == len(scenario.snapshot.logs)

    window = scenario.snapshot.window()
    end = window.end + timedelta(minutes=1)
    fetched = source.fetch([], window.start, end)

    def key(r: LogRecord) -> tuple:
        stamp = r.timestamp.replace(microsecond=r.timestamp.microsecond // 1000 * 1000)
        return (stamp, r.service, r.level, r.message, r.pod, r.trace_id)

    assert Counter(map(key, fetched.records)) == Counter(map(key, scenario.snapshot.logs))
    assert sum(
        round(sum(v for v in s.values if v) * s.resolution_s) for s in fetched.count_signals
    ) == len(lines)


def test_kibana_links_on_series_and_records(backend: Backend) -> None:
    backend.load("logs", synthetic_docs(300, services=2))
    linked = backend.source(kibana_url="https://kibana.example:5601/").fetch([], START, WINDOW_END)
    assert linked.records and linked.count_signals
    for signal in linked.count_signals:
        assert signal.link is not None
        assert signal.link.startswith("https://kibana.example:5601/app/discover#/")
        assert f"%22{signal.service}%22" in signal.link
    for record in linked.records:
        assert record.fields["link"].startswith("https://kibana.example:5601/app/discover#/")
        assert f"%22{record.service}%22" in record.fields["link"]
    plain = backend.source().fetch([], START, WINDOW_END)
    assert all(s.link is None for s in plain.count_signals)
    assert all("link" not in r.fields for r in plain.records)


def test_check_reports_version_and_what_the_index_holds(backend: Backend) -> None:
    backend.load("logs", synthetic_docs(250, services=3))
    line = backend.source().check()
    assert line.startswith("Elasticsearch ")
    assert "250 log lines from 3 services" in line
    empty = backend.source(index=f"{backend.prefix}-nothing-*").check()
    assert "no log lines" in empty


def test_partial_shard_failures_are_noted(double_backend: Backend) -> None:
    backend = double_backend
    assert backend.double is not None
    backend.load("logs", synthetic_docs(500))
    backend.double.failed_shards = 2
    fetched = backend.source().fetch([], START, WINDOW_END)
    assert any("2 of 5 shards failed" in note for note in fetched.notes)
    assert 0 < len(fetched.records) < len(_window_docs(list(synthetic_docs(500))))


def test_missing_index_is_a_note_not_an_error(backend: Backend) -> None:
    source: ElasticsearchSource = backend.source(index=f"{backend.prefix}-absent")
    fetched = source.fetch([], START, WINDOW_END)
    assert fetched.records == [] and fetched.count_signals == []
    assert any("no index matches" in note for note in fetched.notes)
