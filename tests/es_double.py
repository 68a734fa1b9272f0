"""A small Elasticsearch 8 test double at the HTTP boundary, under the real client.

It answers, with Elasticsearch's response shapes and the ``X-Elastic-Product`` header the
client checks, exactly the requests the log connector sends: ``GET /``, index template PUT,
``_bulk``, ``_refresh``, ``_search`` (see :mod:`es_eval` and :mod:`es_aggs` for the query
and aggregation subset), point in time open/close; and the index and template deletes that
the tests' cleanup sends to a real cluster. Data lives in columnar in-memory indices
(:mod:`es_store`), so filters really filter and aggregations really count.

Honesty rule: any request it does not model (path, parameter, query clause, aggregation)
gets a 400 in Elasticsearch's error shape *and* is appended to :attr:`EsDouble.errors`, which
the test fixtures assert is empty. Knobs for failure tests: ``api_key`` or ``basic`` (401
without that ``Authorization``),
``deny_read`` (403 on searches), ``fail_status`` (requests whose path ends with ``fail_on``
answer that status),
``failed_shards`` (searches lose the rows of that many of 5 shards and say so).

Run standalone, pre-loaded, for benchmarks: ``python tests/es_synthetic.py --port-file F``.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from es_aggs import aggregate
from es_eval import View, after_mask, includes_of, only, parse_sort
from es_store import EsError, Index, Unsupported, resolve, template_types

SHARDS = 5
MAX_WINDOW = 10_000
_KEEP_ALIVE = re.compile(r"^\d+(ms|s|m|h|d)$")
_JSON = "application/vnd.elasticsearch+json;compatible-with=8"


class EsDouble:
    """The double's state and request handling; :meth:`start` serves it on a free port."""

    def __init__(self, api_key: str | None = None, basic: tuple[str, str] | None = None) -> None:
        self.authorization: str | None = None
        if api_key is not None:
            self.authorization = f"ApiKey {api_key}"
        elif basic is not None:
            self.authorization = "Basic " + base64.b64encode(":".join(basic).encode()).decode()
        self.deny_read = False
        self.fail_status: int | None = None
        self.fail_on = ""  # fail_status applies to paths ending with this
        self.failed_shards = 0
        self.indices: dict[str, Index] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.pits: dict[str, dict[str, int]] = {}  # id -> index name -> rows visible
        self.errors: list[str] = []
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EsDouble:
        double = self

        class Handler(_Handler):
            owner = double

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- direct loading (no HTTP), for large fixtures -----------------------------------

    def load(self, index: str, docs: list[dict[str, Any]]) -> None:
        target = self._index(index)
        for doc in docs:
            target.add(doc)

    def _index(self, name: str) -> Index:
        if name not in self.indices:
            matching = [
                t
                for t in self.templates.values()
                if any(fnmatch.fnmatchcase(name, p) for p in t["index_patterns"])
            ]
            chosen = max(matching, key=lambda t: t.get("priority", 0), default=None)
            props = (chosen or {}).get("template", {}).get("mappings", {}).get("properties", {})
            self.indices[name] = Index(name, len(self.indices), template_types(props))
        return self.indices[name]

    # --- request handling ---------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        parts = urlsplit(target)
        path, params = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.requests.append(f"{method} {path}")
        with self._lock:
            try:
                if self.authorization and headers.get("authorization") != self.authorization:
                    return 401, _error(
                        401,
                        "security_exception",
                        f"unable to authenticate with provided credentials and anonymous "
                        f"access is not allowed for this request [{path}]",
                    )
                if self.fail_status is not None and path != "/" and path.endswith(self.fail_on):
                    return self.fail_status, _error(
                        self.fail_status, "illegal_state_exception", "injected failure"
                    )
                return 200, self._route(method, path, params, body)
            except EsError as err:
                return err.status, _error(err.status, err.type, err.reason)
            except Unsupported as err:
                return self._loud(f"{method} {target}: {err}")
            except (KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
                return self._loud(f"{method} {target}: malformed or unmodelled body ({err!r})")

    def _loud(self, message: str) -> tuple[int, dict[str, Any]]:
        self.errors.append(message)
        return 400, _error(400, "parsing_exception", f"[es_double] unsupported request: {message}")

    def _route(self, method: str, path: str, params: dict[str, str], body: bytes) -> Any:
        segments = [s for s in path.split("/") if s]
        allowed: set[str] = set()
        if method in ("GET", "HEAD") and not segments:
            result: Any = _info()
        elif method == "PUT" and len(segments) == 2 and segments[0] == "_index_template":
            result = self._put_template(segments[1], json.loads(body))
        elif method in ("POST", "PUT") and segments[-1:] == ["_bulk"] and len(segments) <= 2:
            allowed = {"refresh"}
            result = self._bulk(segments[0] if len(segments) == 2 else None, body)
        elif method == "POST" and segments[-1:] == ["_refresh"] and len(segments) <= 2:
            result = {"_shards": {"total": SHARDS, "successful": SHARDS, "failed": 0}}
        elif method == "POST" and len(segments) == 2 and segments[1] == "_pit":
            allowed = {"keep_alive"}
            result = self._open_pit(segments[0], params)
        elif method == "DELETE" and segments == ["_pit"]:
            result = self._close_pit(json.loads(body))
        elif method == "DELETE" and len(segments) == 2 and segments[0] == "_index_template":
            if self.templates.pop(segments[1], None) is None:
                raise EsError(404, "resource_not_found_exception", f"{segments[1]} not found")
            result = {"acknowledged": True}
        elif method == "DELETE" and len(segments) == 1 and not segments[0].startswith("_"):
            allowed = {"ignore_unavailable"}
            for index in resolve(
                self.indices, segments[0], params.get("ignore_unavailable") != "true"
            ):
                del self.indices[index.name]
            result = {"acknowledged": True}
        elif method in ("GET", "POST") and segments[-1:] == ["_search"] and len(segments) <= 2:
            index = segments[0] if len(segments) == 2 else None
            result = self._search(index, json.loads(body) if body else {})
        else:
            raise Unsupported(f"no handler for {method} {path}")
        extra = set(params) - allowed
        if extra:
            raise Unsupported(f"query parameters {sorted(extra)} are not modelled")
        return result

    def _put_template(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        extra = set(body) - {"index_patterns", "priority", "template"}
        if extra or set(body.get("template", {})) - {"mappings", "settings"}:
            raise Unsupported(f"index template keys {sorted(extra)} are not modelled")
        self.templates[name] = body
        return {"acknowledged": True}

    def _bulk(self, default_index: str | None, body: bytes) -> dict[str, Any]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        items, errors = [], False
        for action, doc in zip(lines[::2], lines[1::2], strict=True):
            op, meta = next(iter(action.items()))
            if op not in ("create", "index") or set(meta) - {"_index"}:
                raise Unsupported(f"bulk action {action} is not modelled")
            name = meta.get("_index", default_index)
            index = self._index(name)
            item: dict[str, Any] = {"_index": name, "_id": f"{index.ordinal:02d}{index.rows:018d}"}
            try:
                index.add(doc)
                item.update(_version=1, result="created", status=201)
            except EsError as err:
                errors = True
                item.update(status=err.status, error={"type": err.type, "reason": err.reason})
            items.append({op: item})
        return {"errors": errors, "took": 1, "items": items}

    def _open_pit(self, index: str, params: dict[str, str]) -> dict[str, Any]:
        if not _KEEP_ALIVE.match(params.get("keep_alive", "")):
            raise EsError(400, "action_request_validation_exception", "[keep_alive] is missing")
        if self.deny_read:
            raise self._forbidden(index)
        pit_id = secrets.token_urlsafe(24)
        self.pits[pit_id] = {i.name: i.rows for i in resolve(self.indices, index)}
        return {"id": pit_id, "_shards": _shards(0, 0)}

    def _close_pit(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.pits.pop(body["id"], None) is None:
            raise EsError(404, "search_context_missing_exception", "No search context found")
        return {"succeeded": True, "num_freed": 1}

    def _forbidden(self, index: str | None) -> EsError:
        return EsError(
            403,
            "security_exception",
            f"action [indices:data/read/search] is unauthorized for API key on indices "
            f"[{index}], this action is granted by the index privileges [read,all]",
        )

    def _views(self, index: str | None, pit: dict[str, Any] | None) -> list[View]:
        if pit is not None:
            if index is not None:
                raise EsError(
                    400,
                    "action_request_validation_exception",
                    "[indices] cannot be used with point in time",
                )
            only(pit, {"id", "keep_alive"}, "pit")
            if pit["id"] not in self.pits:
                raise EsError(404, "search_context_missing_exception", "No search context found")
            visible = {self.indices[n]: rows for n, rows in self.pits[pit["id"]].items()}
        else:
            visible = {i: i.rows for i in resolve(self.indices, index)}
        views = []
        for idx, rows in visible.items():
            alive = np.arange(rows) % SHARDS >= self.failed_shards
            views.append(View(idx, rows, alive))
        return views

    def _search(self, index: str | None, body: dict[str, Any]) -> dict[str, Any]:
        only(
            body,
            {"size", "query", "sort", "_source", "pit", "search_after", "track_total_hits", "aggs"},
            "search body",
        )
        if self.deny_read:
            raise self._forbidden(index)
        size = int(body.get("size", 10))
        if size > MAX_WINDOW:
            raise EsError(400, "illegal_argument_exception", "Result window is too large")
        pit = body.get("pit")
        views = self._views(index, pit)
        selection = [(view, view.matching(body.get("query"))) for view in views]
        total = sum(len(rows) for _, rows in selection)
        hits = self._hits(selection, body, pit is not None)[:size] if size else []
        response: dict[str, Any] = {
            "took": 1,
            "timed_out": False,
            "_shards": _shards(SHARDS * len(views), self.failed_shards * len(views), index),
            "hits": {"max_score": None, "hits": hits},
        }
        tracked = body.get("track_total_hits", MAX_WINDOW)
        if tracked is not False:
            cap = None if tracked is True else int(tracked)
            shown = total if cap is None else min(total, cap)
            relation = "gte" if cap is not None and total > cap else "eq"
            response["hits"]["total"] = {"value": shown, "relation": relation}
        if "aggs" in body:
            response["aggregations"] = aggregate(selection, body["aggs"])
        if pit is not None:
            response["pit_id"] = pit["id"]
        return response

    def _hits(self, selection: list[Any], body: dict[str, Any], with_pit: bool) -> list[Any]:
        keys = parse_sort(body.get("sort"), with_pit)
        if "search_after" in body and not keys:
            raise EsError(400, "action_request_validation_exception", "sort must be set")
        owners = np.concatenate([np.full(len(r), n) for n, (_, r) in enumerate(selection)] or [[]])
        rows = np.concatenate([r for _, r in selection] or [np.zeros(0, dtype=np.int64)])
        columns = [
            np.concatenate(
                [k.values(v, r) for v, r in selection] or [np.zeros(0, dtype=np.int64)]
            ).astype(np.int64)
            for k in keys
        ]
        order = np.arange(len(rows))
        if keys:
            ranked = [~c if k.descending else c for c, k in zip(columns, keys, strict=True)]
            order = np.lexsort(ranked[::-1])
        if "search_after" in body:
            order = order[after_mask([c[order] for c in columns], keys, body["search_after"])]
        order = order[: int(body.get("size", 10))]
        includes = includes_of(body.get("_source", True))
        hits = []
        for i in order.tolist():
            view = selection[int(owners[i])][0]
            row = int(rows[i])
            hit: dict[str, Any] = {
                "_index": view.index.name,
                "_id": f"{view.index.ordinal:02d}{row:018d}",
                "_score": None if keys else 0.0,
            }
            if includes is not False:
                hit["_source"] = view.index.source(row, includes or None)
            if keys:
                hit["sort"] = [int(c[i]) for c in columns]
            hits.append(hit)
        return hits


def _shards(total: int, failed: int, index: str | None = None) -> dict[str, Any]:
    shards: dict[str, Any] = {
        "total": total,
        "successful": total - failed,
        "skipped": 0,
        "failed": failed,
    }
    if failed:
        shards["failures"] = [
            {
                "shard": 0,
                "index": index,
                "node": "es-double-node",
                "reason": {
                    "type": "es_rejected_execution_exception",
                    "reason": "rejected execution of search (queue capacity 1000)",
                },
            }
        ]
    return shards


def _error(status: int, type_: str, reason: str) -> dict[str, Any]:
    cause = {"type": type_, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def _info() -> dict[str, Any]:
    return {
        "name": "es-double",
        "cluster_name": "es-double",
        "cluster_uuid": "dOuBlEdOuBlEdOuBlE0000",
        "version": {
            "number": "8.15.0",
            "build_flavor": "default",
            "build_type": "docker",
            "lucene_version": "9.11.1",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    owner: EsDouble

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload = self.owner.handle(self.command, self.path, headers, body)
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", _JSON)
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'ApiKey, Basic realm="security"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return


@contextmanager
def running(api_key: str | None = None, basic: tuple[str, str] | None = None) -> Iterator[EsDouble]:
    double = EsDouble(api_key, basic).start()
    try:
        yield double
    finally:
        double.stop()
