"""Overload is not a bug: a request that found no database connection in time is answered
`503` with `Retry-After` (REST faces) or a GraphQL error with `extensions.code: UNAVAILABLE`.

The pool (gateway/db.py) waits at most GATEWAY_DB_POOL_TIMEOUT seconds for a connection,
then raises sqlalchemy.exc.TimeoutError, whose text ("QueuePool limit of size 10 overflow
20 reached, ...") is an internal. PostgreSQL refusing more connections, or still starting,
is the same condition. `is_overload` recognises them behind any wrapping;
`mark_unavailable` codes such GraphQL errors (GatewaySchema.process_errors calls it before
the INTERNAL masking) and, when nothing of the operation succeeded, makes the HTTP answer
503 with Retry-After; schema/rest_errors.py answers them on the REST faces.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response

# The module, not its names: rest_errors imports this module too (it answers overload).
from schema import rest_errors

log = logging.getLogger("gateway.overload")

UNAVAILABLE = "UNAVAILABLE"
#: Seconds a client should wait before retrying: enough for queued work to drain.
RETRY_AFTER_SECONDS = 1
MESSAGE = "The gateway is busy. Retry after the number of seconds in Retry-After (retryAfter)."
#: asyncpg's errors for a server that refuses more connections or is starting up.
_SERVER_BUSY = frozenset({"TooManyConnectionsError", "CannotConnectNowError"})


def is_overload(exc: BaseException | None) -> bool:
    """Whether `exc` (or what it wraps) means the database had no connection for us in time."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, sa.exc.TimeoutError):
            return True
        if isinstance(exc, sa.exc.DBAPIError) and type(exc.orig).__name__ in _SERVER_BUSY:
            return True
        if type(exc).__name__ in _SERVER_BUSY:
            return True
        nested = exc.original_error if isinstance(exc, GraphQLError) else None
        exc, seen = nested or exc.__cause__ or exc.__context__, seen + 1
    return False


def retry_headers() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


async def pool_timeout_handler(request: Request, exc: Exception) -> Response:
    """Starlette's handler for sqlalchemy.exc.TimeoutError escaping any route (gateway/app.py):
    answered in the face's shape by `rest_errors.internal_error` (503, Retry-After). As a
    handler of that class it runs in Starlette's ExceptionMiddleware, which does not re-raise:
    overload neither logs a traceback per request nor drops the client's connection."""
    return rest_errors.internal_error(request, exc)


def mark_unavailable(errors: list[GraphQLError], execution_context: Any = None) -> None:
    """Code the errors caused by overload UNAVAILABLE (with `retryAfter`), in place; if every
    error is one and no root field has data, the HTTP answer becomes 503 with Retry-After."""
    marked = 0
    for error in errors:
        if (error.extensions or {}).get("code") == UNAVAILABLE:
            marked += 1
            continue
        if (error.extensions or {}).get("code") or not is_overload(error.original_error):
            continue
        error.message = MESSAGE
        error.extensions = {"code": UNAVAILABLE, "retryAfter": RETRY_AFTER_SECONDS}
        marked += 1
    if not marked:
        return
    log.warning("%d GraphQL error(s) answered UNAVAILABLE: no database connection in time", marked)
    if marked == len(errors) and not _has_data(getattr(execution_context, "result", None)):
        response = getattr(getattr(execution_context, "context", None), "response", None)
        if response is not None:
            response.status_code = 503
            response.headers.update(retry_headers())


def _has_data(result: Any) -> bool:
    data = getattr(result, "data", None)
    return isinstance(data, dict) and any(value is not None for value in data.values())


__all__ = [
    "MESSAGE",
    "RETRY_AFTER_SECONDS",
    "UNAVAILABLE",
    "is_overload",
    "mark_unavailable",
    "pool_timeout_handler",
    "retry_headers",
]
