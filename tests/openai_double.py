"""A local HTTP server shaped like the OpenAI chat completions and embeddings API, for the
openai backend and memory embedding tests.

It answers ``POST .../chat/completions`` (plain and Azure deployment paths) from a script of
replies, in order, and ``POST /v1/embeddings`` with deterministic vectors (a hashed bag of
words: texts sharing words get close vectors) unless ``embedding_replies`` scripts an error
or a hang (or, with ``Reply.answer(json_text)``, a body of its own). Every request (path,
headers, JSON body) is recorded so tests can assert exactly what left the process. Response
bodies are the API's real shapes: ``chat.completion`` and embedding ``list`` objects with
``usage``, and ``{"error": {...}}`` bodies with the status codes OpenAI uses.

Replies::

    Reply.answer('{"root_cause": ...}')          # 200, the text as the message content
    Reply.error(429, retry_after="1")            # rate limited
    Reply.error(500)                             # server error
    Reply.error(400, message="... response_format ... json_schema ...")
    Reply.hang(5.0)                              # no answer for 5 s: the client times out

When the script runs out, the last reply repeats.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    content: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    message: str = ""
    hang_s: float = 0.0

    @classmethod
    def answer(cls, content: str) -> Reply:
        return cls(content=content)

    @classmethod
    def error(cls, status: int, message: str = "", retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return cls(status=status, message=message or f"error {status}", headers=headers)

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        return cls(hang_s=seconds)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def completion_body(model: str, content: str, prompt_tokens: int) -> dict[str, Any]:
    completion_tokens = _tokens(content)
    return {
        "id": "chatcmpl-test0001",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "system_fingerprint": "fp_test",
    }


EMBEDDING_DIMENSIONS = 64


def bag_of_words(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit vector of the text's hashed words: deterministic, and close for texts that
    share most of their words."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % dimensions] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    """As the API sends it: floats, or ``base64`` of little-endian float32."""
    if encoding != "base64":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_body(model: str, texts: list[str], encoding: str = "float") -> dict[str, Any]:
    tokens = sum(_tokens(t) for t in texts)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encoded(bag_of_words(t), encoding)}
            for i, t in enumerate(texts)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


class OpenAIDouble:
    """Start with ``with OpenAIDouble([...]) as api:``; ``api.base_url`` ends in ``/v1``."""

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies = list(replies or [])
        self.requests: list[Request] = []
        self.embedding_replies: list[Reply] = []  # empty: every embedding request is answered
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def __enter__(self) -> OpenAIDouble:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies = list(replies)

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if not self.replies:
                return Reply.error(500, "no scripted reply")
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def _next_embedding(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if not self.embedding_replies:
                return Reply()
            return self.embedding_replies.pop(0)

    @property
    def embedding_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.split("?")[0].endswith("/embeddings")]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                if self.path.split("?")[0].endswith("/embeddings"):
                    self._embeddings(request)
                    return
                if not self.path.split("?")[0].endswith("/chat/completions"):
                    self._send(
                        404, {"error": {"message": "not found", "type": "invalid_request_error"}}
                    )
                    return
                reply = double._next(request)
                if self._hung_or_refused(reply):
                    return
                body = request.body
                prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
                self._send(
                    200, completion_body(body.get("model", ""), reply.content, _tokens(prompt))
                )

            def _hung_or_refused(self, reply: Reply) -> bool:
                """Hang or answer the scripted error; False: the reply is a 200 to send."""
                if reply.hang_s:
                    double._released.wait(reply.hang_s)
                    return True
                if reply.status != 200:
                    kind, code = _ERROR_TYPES.get(reply.status, ("server_error", None))
                    error = {"message": reply.message, "type": kind, "param": None, "code": code}
                    self._send(reply.status, {"error": error}, reply.headers)
                    return True
                return False

            def _embeddings(self, request: Request) -> None:
                reply = double._next_embedding(request)
                if self._hung_or_refused(reply):
                    return
                if reply.content:  # a scripted body, e.g. a malformed one
                    self._send(200, json.loads(reply.content))
                    return
                body = request.body
                given = body.get("input", "")
                texts = [given] if isinstance(given, str) else [str(t) for t in given]
                encoding = str(body.get("encoding_format") or "float")
                self._send(200, embeddings_body(body.get("model", ""), texts, encoding))

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("x-request-id", "req_test")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
