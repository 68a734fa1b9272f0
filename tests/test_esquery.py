"""Pure parts of the Elasticsearch connector: sampling arithmetic, links, field lookup,
settings validation. No server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.eshits import _path, lookup
from connectors.esquery import discover_link, histogram_step_s, index_template
from connectors.logcounts import LineCounts, canonical_level, plan_samples, tier_of, waterfill
from connectors.settings import ElasticsearchSettings, LogFields

T0 = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)


@given(st.lists(st.integers(0, 10_000), max_size=30), st.integers(0, 100_000))
def test_waterfill_never_overfills_and_uses_the_budget(counts: list[int], budget: int) -> None:
    alloc = waterfill(counts, budget)
    assert all(0 <= a <= c for a, c in zip(alloc, counts, strict=True))
    assert sum(alloc) == min(budget, sum(counts))
    if alloc:
        short = [a for a, c in zip(alloc, counts, strict=True) if a < c]
        assert not short or max(short) - min(short) <= 1  # the starved share equally


def test_histogram_step_caps_points() -> None:
    assert histogram_step_s(3600, 360) == 10
    assert histogram_step_s(7200, 360) == 30
    assert histogram_step_s(60, 360) == 1
    for span in (59, 3600, 86_400, 7 * 86_400):
        assert span / histogram_step_s(span, 200) <= 200


def test_levels_normalise_like_log_records() -> None:
    assert canonical_level("warning") == "WARN"
    assert canonical_level("fatal") == "CRITICAL"
    assert canonical_level(None) == "INFO"
    assert [tier_of(x) for x in ("Error", "WARN", "info", None)] == [0, 1, 2, 2]


def test_plan_fetches_small_services_whole_and_caps_big_ones() -> None:
    start_ms = int(T0.timestamp() * 1000)
    counts = LineCounts(start_ms, start_ms + 3_600_000, 60_000)
    for minute in range(60):
        bucket = start_ms + minute * 60_000
        counts.add("big", "info", bucket, 100)
        counts.add("big", "ERROR", bucket, 1)
        counts.add("small", "info", bucket, 2)
    requests, notes = plan_samples(counts, cap=1000, max_records=10_000)
    whole = [r for r in requests if r.services == ("small",)]
    assert len(whole) == 1 and whole[0].limit == 120 and whole[0].levels is None
    big = [r for r in requests if r.services == ("big",)]
    assert big[0].levels == ("ERROR",) and big[0].limit == 60
    rest = big[1:]
    assert all(r.exclude_levels == ("ERROR",) for r in rest)
    assert sum(r.limit for r in rest) == 940 and len(rest) > 1
    assert notes == ["big: sampled 1,000 of 6,060 log lines (all 60 error/warning lines)"]


def test_total_record_budget_is_shared_across_services() -> None:
    start_ms = 0
    counts = LineCounts(start_ms, 600_000, 60_000)
    for service in ("a", "b", "c"):
        counts.add(service, "info", 0, 5000)
    requests, _ = plan_samples(counts, cap=4000, max_records=6000)
    assert sum(r.limit for r in requests) == 6000
    assert {r.services[0] for r in requests} == {"a", "b", "c"}


def test_discover_link_escapes_rison_and_kql() -> None:
    link = discover_link(
        "https://kibana/",
        LogFields(),
        'it\'s "odd"!',
        T0,
        T0 + timedelta(hours=1),
        level="error",
        data_view="logs-view",
    )
    assert link.startswith("https://kibana/app/discover#/?_g=(time:(from:'2024-05-14T10:00")
    decoded = unquote(link)
    assert "index:'logs-view'" in decoded
    assert 'query:\'service.name:"it!\'s \\"odd\\"!!" and log.level:"error"\'' in decoded


def test_lookup_reads_nested_dotted_and_mixed_sources() -> None:
    assert lookup({"service": {"name": "a"}}, _path("service.name")) == "a"
    assert lookup({"service.name": "b"}, _path("service.name")) == "b"
    assert lookup({"kubernetes": {"pod.name": "c"}}, _path("kubernetes.pod.name")) == "c"
    assert lookup({"service": "flat"}, _path("service.name")) is None
    assert lookup({"app": "x"}, _path("app.keyword")) == "x"


def test_index_template_maps_fields_for_counting() -> None:
    template = index_template(LogFields(service="app.keyword"), "logs-demo")
    props = template["template"]["mappings"]["properties"]
    assert props["@timestamp"] == {"type": "date"}
    assert props["app"]["type"] == "keyword"
    assert props["log"]["properties"]["level"]["type"] == "keyword"
    assert props["kubernetes"]["properties"]["pod"]["properties"]["name"]["type"] == "keyword"
    assert template["index_patterns"] == ["logs-demo"]


def test_field_overrides_must_name_a_configured_pattern() -> None:
    settings = ElasticsearchSettings(
        index="logs-*, legacy-*", index_fields={"legacy-*": LogFields(level="severity")}
    )
    assert settings.fields_for("legacy-*").level == "severity"
    assert settings.fields_for("legacy-*").service == "service.name"
    assert settings.fields_for("logs-*").level == "log.level"
    with pytest.raises(ValidationError, match="not in index"):
        ElasticsearchSettings(index="logs-*", index_fields={"other-*": LogFields()})
