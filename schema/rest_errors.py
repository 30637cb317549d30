"""One error shape per HTTP face, and one way to answer an unexpected error on any of them.

The faces and their documented error bodies:

- `/graphql`: `{"errors": [{"message", "extensions": {"code"}}]}` (the contract's);
- `/pos/v1/...`: `{"error": {"code", "message", "field"}}` (connectors/pos_openapi.yaml);
- `/oauth/...`, `/.well-known/...`: RFC 6749 `{"error", "error_description"}`;
- everything else (settlement and statement documents, the reconciliation upload, health):
  `{"error": "<lowercase code>", "message"}`.

An unexpected exception (a bug, an outage) is answered on its face with a generic message,
the code INTERNAL (`internal` on the lowercase face, `server_error` on OAuth's) and an
`errorId`; the exception is logged with its traceback under that id, so an operator can
find what a partner quotes. Nothing of the exception (SQL text, bound parameters, driver
messages) reaches the client, unless `show_internal` (development with GATEWAY_DEBUG_ERRORS).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from schema import overload

log = logging.getLogger("gateway.errors")

INTERNAL = "INTERNAL"
INTERNAL_MESSAGE = "Internal error. Quote the errorId to the program office if it persists."
#: RFC 6749's codes for the OAuth face; anything else a client did wrong is invalid_request.
_OAUTH_CODES = {INTERNAL: "server_error", "UNAVAILABLE": "temporarily_unavailable"}


def face_of(path: str) -> str:
    if path == "/graphql" or path.startswith("/graphql/"):
        return "graphql"
    if path.startswith("/pos/"):
        return "pos"
    if path.startswith(("/oauth/", "/.well-known/")):
        return "oauth"
    return "documents"


def error_body(face: str, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error on `face`; `extra` (e.g. errorId) goes beside the code."""
    if face == "graphql":
        return {"errors": [{"message": message, "extensions": {"code": code, **extra}}]}
    if face == "pos":
        return {"error": {"code": code, "message": message, "field": extra.pop("field", None), **extra}}
    if face == "oauth":
        return {"error": _OAUTH_CODES.get(code, "invalid_request"), "error_description": message, **extra}
    return {"error": code.lower(), "message": message, **extra}


def face_error(
    path: str, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An error response in the shape of the face serving `path`."""
    headers = {"Cache-Control": "no-store", **(headers or {})}
    return JSONResponse(error_body(face_of(path), code, message, **extra), status_code=status, headers=headers)


def log_internal(exc: BaseException | None, where: str, summary: str | None = None) -> str:
    """Log an unexpected failure at `where` (with `exc`'s traceback) under a new error id, and
    return the id; GraphQL's `classify` and every REST face log through here."""
    error_id = uuid.uuid4().hex
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    log.error(
        "INTERNAL errorId=%s at %s: %s",
        error_id,
        where,
        summary if summary is not None else type(exc).__name__,
        exc_info=exc_info,
    )
    return error_id


def internal_error(request: Request, exc: BaseException, *, show_internal: bool = False) -> JSONResponse:
    """The masked answer to an unexpected exception while serving `request`."""
    path = request.url.path
    if overload.is_overload(exc):  # no database connection in time: 503, not a bug (schema/overload.py)
        return face_error(
            path,
            503,
            overload.UNAVAILABLE,
            overload.MESSAGE,
            headers=overload.retry_headers(),
            retryAfter=overload.RETRY_AFTER_SECONDS,
        )
    error_id = log_internal(exc, f"{request.method} {path}")
    message = INTERNAL_MESSAGE
    if show_internal:
        message = f"{INTERNAL_MESSAGE} ({type(exc).__name__}: {exc})"
    return face_error(path, 500, INTERNAL, message, errorId=error_id)


def show_internal(settings: Any) -> bool:
    """Whether unexpected errors keep their own message: development with GATEWAY_DEBUG_ERRORS only."""
    return bool(getattr(settings, "development", False) and getattr(settings, "debug_errors", False))


Handler = Callable[[Request], Awaitable[Response]]


def masked(settings: Any) -> Callable[[Handler], Handler]:
    """Decorator for a face's endpoint: an exception escaping it is answered by `internal_error`
    (not re-raised: it is logged once, with its id). A client that went away is no error of ours."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ClientDisconnect:
                log.info("client went away during %s %s", request.method, request.url.path)
                return face_error(request.url.path, 400, "INVALID_INPUT", "The request body did not arrive.")
            except Exception as exc:  # noqa: BLE001 - the point: nothing unexpected leaks
                return internal_error(request, exc, show_internal=show_internal(settings))

        return endpoint

    return decorate


async def last_resort(request: Request, exc: Exception) -> Response:
    """Starlette's handler for any exception no face caught (gateway/app.py installs it)."""
    if isinstance(exc, ClientDisconnect):
        return face_error(request.url.path, 400, "INVALID_INPUT", "The request body did not arrive.")
    state = getattr(request.app.state, "gateway", None)
    return internal_error(request, exc, show_internal=show_internal(getattr(state, "settings", None)))


_ROUTING_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


async def routing_error(request: Request, exc: HTTPException) -> Response:
    """The router's own refusals (unknown path, method not served) in the face's shape, so a
    partner's client parses every error of a face the same way."""
    code = _ROUTING_CODES.get(exc.status_code, "INVALID_INPUT")
    return face_error(request.url.path, exc.status_code, code, str(exc.detail), headers=exc.headers)


__all__ = [
    "INTERNAL",
    "INTERNAL_MESSAGE",
    "error_body",
    "face_error",
    "face_of",
    "internal_error",
    "last_resort",
    "log_internal",
    "masked",
    "routing_error",
    "show_internal",
]
