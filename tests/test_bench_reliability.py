"""The chaos benchmark's bookkeeping: what counts as lost, duplicated, a 5xx (pure, no
server); and Alertmanager's retry in :func:`evals.chaos.deliver_all` against a tiny server
that fails on purpose."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evals.bench_reliability import _row, notifications
from evals.chaos import Delivery, Stored, deliver_all


def test_notifications_are_five_identical_deliveries_of_each_group_shuffled() -> None:
    payloads = notifications(200, 5)
    groups = Counter(p["groupKey"] for p in payloads)
    assert len(payloads) == 1000 and len(groups) == 200 and set(groups.values()) == {5}
    assert [p["groupKey"] for p in payloads[:5]] != [payloads[0]["groupKey"]] * 5
    assert notifications(200, 5) == payloads  # the same order every run


def test_row_counts_lost_duplicated_and_server_errors_per_group() -> None:
    deliveries = [
        Delivery("a", [(None, 0.5), (503, 0.01), (202, 0.02)]),  # retried, then stored
        Delivery("a", [(202, 0.03)]),
        Delivery("b", [(500, 0.04), (202, 0.05)]),  # a 5xx for client input
        Delivery("c", [(202, 0.06)]),  # acknowledged, never analysed: lost
    ]
    stored = Stored(
        analyses=Counter({"a": 1, "b": 2, "c": 0}),
        done=Counter({"a": 1, "b": 1}),
        posts=Counter({"a": 2, "b": 1}),
    )
    row = _row("burst", "sqlite", deliveries, stored, 9.5, "")
    assert (row.sent, row.acknowledged, row.analyzed, row.posted) == (4, 4, 2, 2)
    assert row.lost == 1  # c
    assert row.duplicated == 2  # a second analysis of b, a second post of a
    assert (row.errors_5xx, row.unavailable_503) == (1, 1)
    assert row.ack_max_ms == 60.0  # answers only: the attempt without one is not timed


@pytest.fixture
def flaky_webhook() -> Iterator[tuple[str, list[int]]]:
    """Answers 503, then 429, then 202, per connection order; records what it answered."""
    answers = [503, 429]
    given: list[int] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                status = answers.pop(0) if answers else 202
                given.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", given
    server.shutdown()
    server.server_close()


def test_deliver_all_retries_5xx_and_429_until_acknowledged(
    flaky_webhook: tuple[str, list[int]],
) -> None:
    url, given = flaky_webhook
    acked: list[int] = []
    deliveries = deliver_all(url, notifications(3, 1), 1, 30, acked.append)
    assert [[s for s, _ in d.attempts] for d in deliveries] == [[503, 429, 202], [202], [202]]
    assert given == [503, 429, 202, 202, 202]
    assert acked == [1, 2, 3]
