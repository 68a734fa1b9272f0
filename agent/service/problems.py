"""One place that turns every failure of a request into a JSON error (never a stack trace).

- :class:`ApiError` (raised by routes and auth) carries its status and code;
- request validation errors become 422 with the path of each bad field (for text no store
  can hold, the path inside the body the check found it at);
- an unreachable or failing database becomes 503 with ``Retry-After``, so Alertmanager and
  other clients retry; a value the database cannot store (NUL, lone surrogates) is 422;
- anything else is a bug: logged with its traceback, answered 500 with no details.
"""

from __future__ import annotations

import json
import logging
from types import UnionType
from typing import Any, Union, get_args, get_origin

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import PydanticSerializationError
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.service.schemas import UNSTORABLE_TEXT, ErrorBody, ErrorDetail, ErrorInfo

log = logging.getLogger("rca.service")
RETRY_AFTER_S = "5"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class ErrorResponse(JSONResponse):
    """JSON in ASCII: an error may quote the client's text (a field path through a label
    key), and text with a lone surrogate cannot be encoded as UTF-8, but can be escaped."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(
    status: int,
    code: str,
    message: str,
    fields: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorInfo(code=code, message=message, fields=fields or []))
    return ErrorResponse(body.model_dump(), status_code=status, headers=headers)


def _path(loc: tuple[object, ...] | list[object]) -> str:
    return ".".join(str(part) for part in loc)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers)


def _where(err: dict[str, Any]) -> str:
    loc = list(err.get("loc", ()))
    if err.get("type") == UNSTORABLE_TEXT:
        loc += (err.get("ctx") or {}).get("at", [])
    return _path(loc)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        ErrorDetail(path=_where(err), message=str(err.get("msg", "invalid")))
        for err in exc.errors()
    ]
    first = fields[0] if fields else ErrorDetail(path="body", message="invalid")
    return error_response(422, "invalid", f"{first.path}: {first.message}", fields)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI could not parse the body at all: malformed input
        return error_response(422, "invalid", f"body: {exc.detail}")
    code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error"
    )
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    return error_response(
        503,
        "database_unavailable",
        "the database is unavailable; nothing was stored, retry later",
        headers={"Retry-After": RETRY_AFTER_S},
    )


async def _unstorable(_: Request, exc: Exception) -> JSONResponse:
    reason = "text must be valid Unicode without NUL"
    if isinstance(exc, DataError):  # the database's own words, e.g. "value too long for ..."
        reason = str(exc.orig).splitlines()[0] if str(exc.orig) else reason
    return error_response(422, "invalid", f"a value cannot be stored: {reason}")


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(UnicodeEncodeError, _unstorable)
    app.add_exception_handler(PydanticSerializationError, _unstorable)
    for unavailable in (OperationalError, DisconnectionError, PoolTimeout, DBAPIError):
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(Exception, _bug)


def _query_fields(dependant: Any) -> dict[str, bool]:
    """The route's query parameters: name -> whether it takes several values (a list)."""
    fields = {
        field.alias: _takes_several(field.field_info.annotation) for field in dependant.query_params
    }
    for sub in dependant.dependencies:
        fields |= _query_fields(sub)
    return fields


def _takes_several(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, UnionType):
        return any(_takes_several(arg) for arg in get_args(annotation))
    return get_origin(annotation) in (list, set, frozenset, tuple)


async def known_query_only(request: Request) -> None:
    """Strict validation: a query parameter the route does not declare is a 422 naming it,
    not silently ignored (a typo such as ``?servce=cart`` would otherwise list everything);
    so is one value given twice (``?service=a&service=b`` would otherwise list only b's)."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    fields = _query_fields(dependant)
    unknown = sorted(set(request.query_params) - set(fields))
    if unknown:
        raise ApiError(422, "invalid", f"query.{unknown[0]}: unknown query parameter")
    for name, several in sorted(fields.items()):
        given = len(request.query_params.getlist(name))
        if given > 1 and not several:
            raise ApiError(422, "invalid", f"query.{name}: given {given} times; give it once")
