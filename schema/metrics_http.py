"""GET /metrics for a bearer token with the `metrics:read` scope (docs/operations.md, "Metrics").

The exposition names routes, operation counts, limits hit and the database pool: not a
partner's business, and a map of the gateway's load for anyone probing it. So it takes an
access token like /graphql does (RFC 6750): none or an invalid one is 401 with
`WWW-Authenticate: Bearer error="invalid_token"`; a token without the scope is 403 with
`error="insufficient_scope"`. Only ADMIN partners may hold `metrics:read` (auth/scopes.py);
give Prometheus a client of its own with that scope alone. Under overload (no database
connection for the token check) the signed token alone is checked, so the pool's figures
stay visible when they matter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from authlib.oauth2.rfc6750.errors import InvalidTokenError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.resource import InvalidToken
from auth.tokens import verify_access_token
from gateway.metrics import render
from schema.overload import is_overload

SCOPE = "metrics:read"


def metrics_endpoint(state: Any) -> Callable[[Request], Awaitable[Response]]:
    async def metrics(request: Request) -> Response:
        try:
            scopes = await _scopes(state, request)
        except InvalidToken as exc:
            return exc.response()
        if SCOPE not in scopes:
            description = f"GET /metrics needs a token with the {SCOPE} scope"
            return JSONResponse(
                {"error": "insufficient_scope", "error_description": description},
                status_code=403,
                headers={
                    "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{SCOPE}"',
                    "Cache-Control": "no-store",
                },
            )
        body, content_type = render()
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    return metrics


async def _scopes(state: Any, request: Request) -> frozenset[str]:
    """The token's scopes, checked like /graphql's; when the database has no connection for
    the check (overload: when the pool figures matter most), the signed token alone decides
    (signature, issuer, audience, expiry): revocation is then not checked, for a read-only view."""
    try:
        return (await state.verifier.verify_request(request)).scopes
    except InvalidToken:
        raise
    except Exception as exc:
        if not is_overload(exc):
            raise
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    try:
        claims = await verify_access_token(token, keystore=state.keystore, settings=state.settings)
    except InvalidTokenError as exc:
        raise InvalidToken(exc.get_error_description()) from None
    return frozenset(str(claims.get("scope", "")).split())


__all__ = ["SCOPE", "metrics_endpoint"]
