"""Uniform error responses: `{"error": {"code", "message", "details"}}` with the right status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from nodeloom.api.schemas import ErrorResponse
from nodeloom.core.errors import GraphValidationError, NodeloomError

log = logging.getLogger("nodeloom.api")

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "body_too_large",
                 422: "invalid_request"}


class ApiError(Exception):
    """Raised by a route to answer with an error body."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} {ident!r} in this project", {what: ident})


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


#: the error responses documented on every route of /v1
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": code.replace("_", " ")}
    for status, code in ((401, "missing or unknown API key"), (403, "the key lacks the scope"),
                         (404, "not found"), (422, "invalid request"))
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


#: the detail of the HTTPException FastAPI raises for a request body it cannot decode
_UNPARSABLE_BODY = "There was an error parsing the body"

#: error types of `nodeloom.api.inputs` that become the response's code
_EDGE_CODES = ("invalid_unicode", "too_deep")


def _location(item: Mapping[str, Any]) -> str:
    """Where a request problem is: `body.inputs.text` (a path inside a value, from `nodeloom.api.inputs`)."""
    path = (item.get("ctx") or {}).get("path")
    loc = [str(part) for part in item.get("loc", ())]
    if isinstance(path, str) and loc:
        return ".".join([loc[0], path])
    return ".".join(loc)


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return JSONResponse(error_body(error.code, error.message, error.details), status_code=error.status)

    async def request_invalid(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        issues = [
            {"location": _location(item), "message": item.get("msg", ""), "type": item.get("type", "")}
            for item in error.errors()
        ]
        first = issues[0] if issues else {"location": "", "message": "invalid", "type": ""}
        message = f"{first['location']}: {first['message']}" if first["location"] else str(first["message"])
        code = first["type"] if first["type"] in _EDGE_CODES else "invalid_request"
        return JSONResponse(error_body(code, message, {"issues": _jsonable(issues)}), status_code=422)

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 400 and error.detail == _UNPARSABLE_BODY:
            # FastAPI's answer to a body that is not UTF-8 text: the same 422 as a body that is not JSON,
            # the status every route documents for a bad body
            return JSONResponse(error_body("invalid_request", "the request body is not JSON text in UTF-8",
                                           {"issues": [{"location": "body", "message": "not UTF-8 JSON text",
                                                        "type": "json_invalid"}]}), status_code=422)
        code = _STATUS_CODES.get(error.status_code, "http_error")
        return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    async def nodeloom_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, NodeloomError)
        status = 422 if isinstance(error, GraphValidationError) else 400
        return JSONResponse(_jsonable(error.to_dict()), status_code=status)

    async def data_error(request: Request, error: Exception) -> JSONResponse:
        # e.g. a NUL character, which PostgreSQL refuses in text
        return JSONResponse(error_body("invalid_value", "a value cannot be stored (unsupported characters?)"),
                            status_code=422)

    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse(error_body("internal_error", "the server failed to handle this request"),
                            status_code=500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(NodeloomError, nodeloom_error)
    app.add_exception_handler(DataError, data_error)
    app.add_exception_handler(Exception, internal_error)
