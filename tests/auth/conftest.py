"""Shared helpers for the auth tests: partners with clients, tokens taken apart, tokens forged."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt

from auth.keys import KeyStore
from tests.support.auth import CLIENT_SECRET_BASIC, register_partner

OPERATOR_SCOPES = ["activity:write", "members:read", "redemptions:read"]
VIEWER = "{ viewer { clientId scopes partner { code kind } } }"


def b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def header_of(token: str) -> dict:
    return b64json(token.split(".")[0])


def claims_of(token: str) -> dict:
    return b64json(token.split(".")[1])


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.fixture
def operator(db):
    """`await operator(code, unit=..., scopes=..., auth_method=...)` -> Registered."""
    counter = iter(range(1, 100))

    async def make(
        code: str = "seoul-walk",
        *,
        unit: str | None = None,
        scopes=OPERATOR_SCOPES,
        auth_method=CLIENT_SECRET_BASIC,
        private_key=None,
    ):
        return await register_partner(
            db,
            code=code,
            kind="OPERATOR",
            scopes=list(scopes),
            unit_code=unit or f"U{next(counter)}X",
            won_per_point="1",
            auth_method=auth_method,
            private_key=private_key,
        )

    return make


@pytest.fixture
async def server_keys(db, live_server):
    """The served gateway's own key store, read from the shared database (to forge tokens)."""
    store = KeyStore(db=db, settings=live_server.settings)
    await store.refresh()
    return store


def forge(store: KeyStore, live_server, *, claims: dict | None = None, header: dict | None = None, drop=()) -> str:
    """A token signed with the gateway's real ES256 key, claims as the test says."""
    now = int(time.time())
    key = store.signing_key("ES256")
    body = {
        "iss": live_server.settings.issuer,
        "sub": "cl_nobody",
        "client_id": "cl_nobody",
        "aud": live_server.settings.audience,
        "scope": "members:read",
        "jti": f"forged-{now}",
        "iat": now,
        "exp": now + 300,
        "partner": "nobody",
        "partner_kind": "OPERATOR",
    }
    body.update(claims or {})
    for name in drop:
        body.pop(name, None)
    head = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    head.update(header or {})
    return jwt.encode(head, body, key, algorithms=["ES256"])
