"""Label values from alerts and users become PromQL string literals, never PromQL syntax.

The unit tests read the generated literal back with a small parser of PromQL's (Go's)
double-quoted strings; the integration test asks the real Prometheus, over series whose
label values are the injection attempts themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_server import PrometheusServer, require_binaries, start_prometheus

from connectors.promql import any_of, duration, equals, join_matchers, label_name, quote, render
from connectors.promtool import backfill

INJECTIONS = [
    '"}',
    '=~".*"',
    'cart"} or vector(1) or up{service="',
    "line\nbreak",
    "tab\there\r",
    "back\\slash",
    "ünïcødé-サービス-🔥",
    ".*",
    "a|b",
    "nul\x00byte",
]
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "a": "\a", "b": "\b"}


def read_literal(text: str, at: int = 0) -> tuple[str, int]:
    """Decode the double-quoted literal starting at ``text[at]``; return it and its end."""
    assert text[at] == '"', f"no literal at {at}: {text!r}"
    out, i = [], at + 1
    while text[i] != '"':
        char = text[i]
        assert char != "\n", "raw newline inside a literal"
        if char == "\\":
            code = text[i + 1]
            if code == "x":
                out.append(chr(int(text[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append(_SIMPLE[code])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out), i + 1


@pytest.mark.parametrize("value", INJECTIONS)
def test_an_equality_matcher_holds_the_value_as_one_literal(value: str) -> None:
    matcher = equals("service", value)
    assert matcher.startswith('service="')
    decoded, end = read_literal(matcher, len("service="))
    assert decoded == value
    assert end == len(matcher), "text after the literal would be PromQL syntax"


@given(st.text())
def test_quote_round_trips_any_text(value: str) -> None:
    decoded, end = read_literal(quote(value))
    assert (decoded, end) == (value, len(quote(value)))


@pytest.mark.parametrize("value", INJECTIONS)
def test_a_regex_matcher_matches_only_the_literal_values(value: str) -> None:
    matcher = any_of("service", [value, "cart"])
    assert matcher.startswith('service=~"')
    pattern, end = read_literal(matcher, len("service=~"))
    assert end == len(matcher)
    assert re.fullmatch(pattern, value, re.DOTALL)
    assert re.fullmatch(pattern, "cart")
    assert not re.fullmatch(pattern, "checkout", re.DOTALL)
    assert not re.fullmatch(pattern, value + "x", re.DOTALL)


def test_any_of_one_value_is_an_equality_and_needs_a_value() -> None:
    assert any_of("service", ["a.b"]) == 'service="a.b"'
    with pytest.raises(ValueError, match="at least one"):
        any_of("service", [])


@pytest.mark.parametrize("name", ["", "1abc", "a-b", 'x"}', "ser vice", "é"])
def test_label_names_cannot_be_escaped_so_bad_ones_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid Prometheus label name"):
        label_name(name)


def test_render_rejects_unknown_placeholders_and_fills_known_ones() -> None:
    assert render("up{$selector}", {"selector": 'a="b"'}) == 'up{a="b"}'
    with pytest.raises(ValueError, match=r"unknown placeholder \$nope"):
        render("up{$nope}", {"selector": ""})


def test_matchers_join_without_empty_parts_and_durations_are_whole_seconds() -> None:
    assert join_matchers("", 'a="1",', " ", 'b="2"') == 'a="1",b="2"'
    assert [duration(s) for s in (0.2, 45, 60, 90, 7200)] == ["1s", "45s", "1m", "90s", "2h"]


# --- against the real Prometheus ---------------------------------------------------------------

_T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC).timestamp()
_HOSTILE = [v for v in INJECTIONS if "\x00" not in v]  # OpenMetrics cannot carry NUL


def _openmetrics_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@pytest.fixture(scope="module")
def hostile_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One gauge per service, services named by the injection attempts, plus ``cart``."""
    root = tmp_path_factory.mktemp("hostile")
    lines = ["# TYPE demo_gauge gauge"]
    for number, service in enumerate(["cart", *_HOSTILE]):
        for minute in range(5):
            stamp = int(_T0 + 60 * minute)
            lines.append(f'demo_gauge{{service="{_openmetrics_value(service)}"}} {number} {stamp}')
    (root / "hostile.om").write_text("\n".join([*lines, "# EOF"]) + "\n", encoding="utf-8")
    require_binaries("promtool", "prometheus")
    backfill(root / "hostile.om", root / "tsdb")
    server = start_prometheus(root / "tsdb", root / "server")
    yield server
    server.stop()


def _services_matching(server: PrometheusServer, matcher: str) -> set[str]:
    answer = httpx.get(
        f"{server.url}/api/v1/query",
        params={"query": f"demo_gauge{{{matcher}}}", "time": str(_T0 + 120)},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return {s["metric"]["service"] for s in answer.json()["data"]["result"]}


@pytest.mark.integration
@pytest.mark.parametrize("value", _HOSTILE)
def test_prometheus_matches_exactly_the_hostile_value(
    hostile_prometheus: PrometheusServer, value: str
) -> None:
    assert _services_matching(hostile_prometheus, equals("service", value)) == {value}
    assert _services_matching(hostile_prometheus, any_of("service", [value, "cart"])) == {
        value,
        "cart",
    }


@pytest.mark.integration
def test_a_value_that_is_not_there_matches_nothing(hostile_prometheus: PrometheusServer) -> None:
    assert _services_matching(hostile_prometheus, equals("service", 'nope"} or up{x="')) == set()
    assert _services_matching(hostile_prometheus, any_of("service", [".+", "c.*"])) == set()
