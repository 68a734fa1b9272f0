"""Log message templates: what each runtime and datastore actually prints when things fail.

Templates are ``str.format`` strings; :class:`Params` fills placeholders lazily with fresh
random values (ids, IPs, sizes), so that a template miner sees stable templates with varying
parameters, as in real logs. The texts imitate the libraries that print them (Spring,
HikariCP, requests, SQLAlchemy, Go's net package, Node) and carry no simulator vocabulary.
"""

# ruff: noqa: E501 (templates are verbatim library messages; wrapping them would hide that)
from __future__ import annotations

import string

import numpy as np

Catalog = dict[str, tuple[str, ...]]

_PORTS = {
    "postgres": 5432,
    "mysql": 3306,
    "redis": 6379,
    "mongodb": 27017,
    "kafka": 9092,
    "rabbitmq": 5672,
    "elasticsearch": 9200,
    "external": 443,
}
_WORDS = ("abc", "null", "NaN", "12,5", "undefined", "EUR", "", "0x1F", "tomorrow")


def port_of(runtime: str) -> int:
    return _PORTS.get(runtime, 8080)


class Params(dict[str, object]):
    """Placeholder values drawn on first use, so each line gets its own ids and numbers."""

    def __init__(self, rng: np.random.Generator, **known: object) -> None:
        super().__init__(known)
        self.rng = rng

    def __missing__(self, key: str) -> object:
        value = self._draw(key)
        self[key] = value
        return value

    def _draw(self, key: str) -> object:
        rng = self.rng
        draws = {
            "id": lambda: int(rng.integers(1000, 999999)),
            "n": lambda: int(rng.integers(2, 64)),
            "ms": lambda: int(rng.integers(1000, 30000)),
            "pid": lambda: int(rng.integers(7, 4000)),
            "ip": lambda: "10.{}.{}.{}".format(*rng.integers(0, 255, 3)),
            "ip2": lambda: "10.{}.{}.{}".format(*rng.integers(0, 255, 3)),
            "eport": lambda: int(rng.integers(32768, 60999)),
            "word": lambda: _WORDS[int(rng.integers(len(_WORDS)))],
            "sku": lambda: "".join(rng.choice(list(string.ascii_uppercase + "0123456789"), 10)),
            "user": lambda: f"u-{int(rng.integers(1, 60000))}",
            "hex": lambda: f"{int(rng.integers(0, 2**31)):x}",
            "size": lambda: int(rng.choice([16, 32, 64, 128, 256])) * 1024,
        }
        if key not in draws:
            raise KeyError(key)
        return draws[key]()


# --- caller-side failures (the trouble is in a callee) -------------------------------------

CALLER: dict[str, Catalog] = {
    "timeout": {
        "go": (
            'error calling {peer}: Get "http://{peer}:{port}/api/v1/items/{id}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
            "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
        ),
        "java": (
            'I/O error on GET request for "http://{peer}:{port}/api/items/{id}": Read timed out; nested exception is java.net.SocketTimeoutException: Read timed out',
            "feign.RetryableException: Read timed out executing GET http://{peer}/api/items/{id}",
        ),
        "python": (
            "HTTPConnectionPool(host='{peer}', port={port}): Read timed out. (read timeout=2.0)",
            "call to {peer} failed after {ms}ms: timed out",
        ),
        "node": (
            "Error: timeout of {ms}ms exceeded (GET http://{peer}:{port}/api/items/{id})",
            "Error: ESOCKETTIMEDOUT calling {peer}",
        ),
    },
    "reset": {
        "go": (
            "read tcp {ip}:{eport}->{ip2}:{port}: read: connection reset by peer",
            'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: read tcp {ip}:{eport}->{ip2}:{port}: read: connection reset by peer"',
        ),
        "java": (
            "java.net.SocketException: Connection reset",
            'org.springframework.web.client.ResourceAccessException: I/O error on POST request for "http://{peer}:{port}/api/items": Connection reset',
        ),
        "python": (
            "ConnectionResetError: [Errno 104] Connection reset by peer",
            "requests.exceptions.ConnectionError: ('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))",
        ),
        "node": ("Error: read ECONNRESET", "Error: socket hang up"),
        "any": (
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
        ),
    },
    "refused": {
        "go": ("dial tcp {ip2}:{port}: connect: connection refused",),
        "java": (
            "java.net.ConnectException: Connection refused (Connection refused)",
            "org.postgresql.util.PSQLException: Connection to {peer}:{port} refused. Check that the hostname and port are correct and that the postmaster is accepting TCP/IP connections.",
        ),
        "python": (
            "requests.exceptions.ConnectionError: HTTPConnectionPool(host='{peer}', port={port}): Max retries exceeded with url: /v1/charge (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f{hex}>: Failed to establish a new connection: [Errno 111] Connection refused'))",
            "redis.exceptions.ConnectionError: Error 111 connecting to {peer}:{port}. Connection refused.",
        ),
        "node": ("Error: connect ECONNREFUSED {ip2}:{port}",),
    },
    "connect_timeout": {
        "go": ("dial tcp {ip2}:{port}: i/o timeout",),
        "java": ("java.net.SocketTimeoutException: connect timed out ({peer}:{port})",),
        "python": ("ConnectTimeoutError: Connection to {peer} timed out. (connect timeout=5)",),
        "node": ("Error: connect ETIMEDOUT {ip2}:{port}",),
    },
    "upstream_5xx": {
        "go": (
            "error calling {peer}: unexpected status 500 Internal Server Error",
            "rpc error: code = Internal desc = {peer}: internal error",
        ),
        "java": (
            'org.springframework.web.client.HttpServerErrorException$InternalServerError: 500 Internal Server Error: [{{"error":"internal"}}]',
            "feign.FeignException$ServiceUnavailable: [503 Service Unavailable] during [GET] to [http://{peer}/api/items/{id}]",
        ),
        "python": (
            "upstream {peer} returned 500 for /api/items/{id}",
            "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: http://{peer}:{port}/api/items",
        ),
        "node": ("Error: Request failed with status code 500", "upstream {peer} responded 503"),
    },
}

# --- the faulty service's own failures ------------------------------------------------------

OWN: dict[str, Catalog] = {
    "server_timeout": {
        "go": ("http: Handler timeout",),
        "java": (
            "org.apache.catalina.connector.ClientAbortException: java.io.IOException: Broken pipe",
        ),
        "python": ("[CRITICAL] WORKER TIMEOUT (pid:{pid})",),
        "node": ("Error: Request aborted",),
        "any": ("request timed out after {ms}ms",),
    },
    "oom": {
        "java": ("java.lang.OutOfMemoryError: Java heap space",),
        "go": ("fatal error: runtime: out of memory",),
        "python": ("MemoryError",),
        "node": (
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
        ),
        "redis": ("OOM command not allowed when used memory > 'maxmemory'.",),
        "any": ("out of memory: cannot allocate {size} bytes",),
    },
    "pool": {
        "java": (
            "HikariPool-1 - Connection is not available, request timed out after {pool_ms}ms.",
        ),
        "python": (
            "sqlalchemy.exc.TimeoutError: QueuePool limit of size {pool} overflow 10 reached, connection timed out, timeout 30.00",
        ),
        "go": ("timeout acquiring connection from pool (size={pool}, waiting={n})",),
        "node": (
            "KnexTimeoutError: Knex: Timeout acquiring a connection. The pool is probably full. Are you missing a .transacting(trx) call?",
        ),
    },
    "disk": {
        "java": ("java.io.IOException: No space left on device",),
        "python": ("OSError: [Errno 28] No space left on device: '/data/spool/{id}.tmp'",),
        "go": ("write /data/segments/{id}.log: no space left on device",),
        "node": ("Error: ENOSPC: no space left on device, write",),
        "postgres": ('could not extend file "base/16384/{id}": No space left on device',),
        "redis": ("Write error saving DB on disk: No space left on device",),
        "mongodb": (
            "WiredTiger error (28) [{id}:{n}], file:collection-{n}--{id}.wt: No space left on device",
        ),
        "mysql": (
            "[ERROR] [MY-000035] [Server] Disk is full writing './binlog.{id}' (OS errno 28 - No space left on device).",
        ),
        "kafka": (
            "Error while appending records to orders-{n} in dir /var/lib/kafka/data (kafka.server.LogDirFailureChannel) java.io.IOException: No space left on device",
        ),
        "rabbitmq": ("disk resource limit alarm set on node rabbit@{service}-0",),
        "elasticsearch": (
            "flood stage disk watermark [95%] exceeded on [{service}-0][/usr/share/elasticsearch/data] free: {n}gb",
        ),
    },
    "reset": {
        "any": (
            "read tcp {ip}:{port}->{ip2}:{eport}: write: broken pipe",
            "connection reset by peer while writing response to {ip2}:{eport}",
        ),
    },
}

# Exceptions a code bug throws (``exception``) and those a broken release throws
# (``regression``); each is (exception class, message with parameters).
EXCEPTIONS: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "exception": {
        "java": (
            (
                "java.lang.NullPointerException",
                'Cannot invoke "Item.getPrice()" because "item" is null',
            ),
            ("java.lang.IllegalStateException", "Order {id} has no shipping address"),
            ("java.lang.NumberFormatException", 'For input string: "{word}"'),
            ("java.lang.ArrayIndexOutOfBoundsException", "Index {n} out of bounds for length {n}"),
        ),
        "python": (
            ("KeyError", "'{sku}'"),
            ("ValueError", "invalid literal for int() with base 10: '{word}'"),
            ("AttributeError", "'NoneType' object has no attribute 'price'"),
            ("ZeroDivisionError", "division by zero"),
        ),
        "go": (
            ("panic", "runtime error: invalid memory address or nil pointer dereference"),
            ("panic", "runtime error: index out of range [{n}] with length {n}"),
            (
                "error",
                "decode order {id}: json: cannot unmarshal string into Go struct field Order.amount of type float64",
            ),
        ),
        "node": (
            ("TypeError", "Cannot read properties of undefined (reading 'price')"),
            ("RangeError", "Invalid currency code: {word}"),
            ("SyntaxError", "Unexpected token u in JSON at position {n}"),
        ),
    },
    "regression": {
        "java": (
            (
                "java.lang.NoSuchMethodError",
                "'java.math.BigDecimal PricingClient.quote(java.lang.String)'",
            ),
            (
                "org.springframework.dao.InvalidDataAccessResourceUsageException",
                'could not execute statement; SQL [n/a]; column "discount_code" does not exist',
            ),
            (
                "java.lang.ClassCastException",
                "class java.lang.String cannot be cast to class java.lang.Long",
            ),
        ),
        "python": (
            ("TypeError", "calculate_total() missing 1 required positional argument: 'currency'"),
            ("ImportError", "cannot import name 'parse_price' from 'shop.pricing'"),
            (
                "pydantic.ValidationError",
                "1 validation error for Order\ncurrency_code\n  field required (type=value_error.missing)",
            ),
        ),
        "go": (
            ("error", 'invalid config: missing required key "upstream.endpoint"'),
            ("panic", "assignment to entry in nil map"),
            ("error", 'pq: column "discount_code" does not exist'),
        ),
        "node": (
            ("ReferenceError", "formatPrice is not defined"),
            ("TypeError", "this.client.quote is not a function"),
            ("Error", "Cannot find module './lib/currency-v2'"),
        ),
    },
}

BENIGN: dict[str, tuple[tuple[str, str], ...]] = {
    "any": (
        ("WARN", "retrying request to {peer} (attempt 2/3)"),
        ("WARN", "deprecated API version v1 used by client {ip}"),
        ("ERROR", "request canceled by client: context canceled"),
        ("ERROR", "validation failed for request: invalid email address"),
        ("WARN", "rate limit exceeded for user {user}"),
        ("ERROR", "failed to refresh feature flags, will retry in 30s"),
        ("WARN", "cache miss ratio high: 0.{n}"),
        ("ERROR", "client disconnected before response was written (broken pipe)"),
    ),
}

BACKGROUND: tuple[str, ...] = (
    "cache refreshed: {n} entries in {n}ms",
    "scheduled job cleanup-sessions finished, removed {n} rows",
    "metrics flushed to collector ({n} series)",
    "config reloaded from /etc/{service}/config.yaml",
    "connection pool stats: active={n} idle={n}",
)

DATASTORE_BACKGROUND: dict[str, tuple[str, ...]] = {
    "postgres": (
        "checkpoint starting: time",
        "checkpoint complete: wrote {n} buffers (0.{n}%); 0 WAL file(s) added, 0 removed, 1 recycled",
        'automatic vacuum of table "shop.public.orders": index scans: 1',
    ),
    "mysql": (
        "[Note] Aborted connection {id} to db: 'shop' user: 'app' host: '{ip}' (Got an error reading communication packets)",
    ),
    "redis": (
        "{n} changes in 60 seconds. Saving...",
        "Background saving started by pid {pid}",
        "DB saved on disk",
    ),
    "mongodb": (
        "Connection accepted from {ip}:{eport} #{id} ({n} connections now open)",
        "Slow query: find orders {ms}ms",
    ),
    "kafka": (
        "[Log partition=orders-{n}, dir=/var/lib/kafka/data] Rolled new log segment at offset {id} in {n} ms.",
    ),
    "rabbitmq": ("accepting AMQP connection <0.{id}.0> ({ip}:{eport} -> {ip2}:5672)",),
    "elasticsearch": ("[gc][{id}] overhead, spent [{n}ms] collecting in the last [1s]",),
    "external": (),
}


SLOW_OPERATIONS: dict[str, str] = {
    "postgres": "duration: {ms:.3f} ms  statement: SELECT * FROM orders WHERE customer_id = $1",
    "mysql": "# Query_time: {s:.6f}  Lock_time: 0.000012 Rows_sent: 1  Rows_examined: {n}",
    "mongodb": "Slow query: find shop.orders planSummary: COLLSCAN durationMillis: {ms:.0f}",
    "elasticsearch": "[index.search.slowlog.query] took[{ms:.0f}ms], total_hits[{n} hits]",
    "redis": "slowlog: ZRANGEBYSCORE took {ms:.0f} ms",
    "any": "slow operation took {ms:.1f} ms",
}


def pick(catalog: Catalog, runtime: str, rng: np.random.Generator) -> str:
    """A template for ``runtime`` or a runtime-neutral one (a mesh proxy's), else any at all."""
    options = catalog.get(runtime, ()) + catalog.get("any", ())
    options = options or next(iter(catalog.values()))
    return options[int(rng.integers(len(options)))]
