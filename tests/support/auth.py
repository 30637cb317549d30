"""Partners, clients and tokens for tests that go over real HTTP (`live_server`).

    reg = await register_partner(db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"],
                                 unit_code="SWM", won_per_point=Decimal("1"))
    gw = GatewayClient(live_server.url, reg.client_id, reg.client_secret)
    data = gw.gql("query($c: String!) { partner(code: $c) { name } }", c="seoul-walk")

Everything here is what a partner does: real POSTs to /oauth/token and /graphql with httpx.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, Key

from auth.clients import create_client
from gateway.bootstrap import ensure_admin_partner
from gateway.db import Database
from gateway.models import ClientAuthMethod, PartnerKind
from gateway.partners import create_partner

CLIENT_SECRET_BASIC = ClientAuthMethod.CLIENT_SECRET_BASIC
CLIENT_SECRET_POST = ClientAuthMethod.CLIENT_SECRET_POST
PRIVATE_KEY_JWT = ClientAuthMethod.PRIVATE_KEY_JWT

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Registered:
    partner_id: int
    code: str
    client_id: str
    #: None for PRIVATE_KEY_JWT clients.
    client_secret: str | None
    auth_method: ClientAuthMethod = CLIENT_SECRET_BASIC
    scopes: list[str] = field(default_factory=list)
    #: PRIVATE_KEY_JWT: the private key whose public half was registered (ES256).
    private_key: Key | None = None


def new_client_key() -> ECKey:
    """A P-256 key pair for a private_key_jwt client (kid = its thumbprint)."""
    return ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, private=True, auto_kid=True)


def public_jwks(key: Key) -> str:
    return json.dumps({"keys": [key.as_dict(private=False)]})


async def register_partner(
    db: Database,
    *,
    code: str,
    kind: PartnerKind | str,
    scopes: list[str],
    unit_code: str | None = None,
    won_per_point: Decimal | str | int | None = None,
    operator_code: str | None = None,
    auth_method: ClientAuthMethod | str = CLIENT_SECRET_BASIC,
    name: str | None = None,
    private_key: Key | None = None,
) -> Registered:
    """Create a partner (ADMIN: the program office, `code` ignored if one exists) and a client.

    PRIVATE_KEY_JWT clients register the public half of `private_key` (default: a new
    P-256 key), returned as `Registered.private_key`."""
    kind = PartnerKind(kind)
    auth_method = ClientAuthMethod(auth_method)
    key = (private_key or new_client_key()) if auth_method == PRIVATE_KEY_JWT else None
    async with db.transaction() as session:
        if kind == PartnerKind.ADMIN:
            partner = await ensure_admin_partner(session)
        else:
            partner = await create_partner(
                session=session,
                code=code,
                name=name or code.replace("-", " ").title(),
                kind=kind,
                unit_code=unit_code,
                won_per_point=Decimal(str(won_per_point)) if won_per_point is not None else None,
                operator_code=operator_code,
            )
        client, secret = await create_client(
            session=session,
            partner=partner,
            scopes=list(scopes),
            auth_method=auth_method,
            jwks=public_jwks(key) if key else None,
        )
        return Registered(
            partner_id=partner.id,
            code=partner.code,
            client_id=client.client_id,
            client_secret=secret,
            auth_method=auth_method,
            scopes=client.scopes,
            private_key=key,
        )


async def add_client(
    db: Database, partner_code: str, *, scopes: list[str], auth_method: ClientAuthMethod | str = CLIENT_SECRET_BASIC
) -> Registered:
    """Another client for an existing partner."""
    from gateway.partners import require

    auth_method = ClientAuthMethod(auth_method)
    key = new_client_key() if auth_method == PRIVATE_KEY_JWT else None
    async with db.transaction() as session:
        partner = await require(session, partner_code)
        client, secret = await create_client(
            session=session,
            partner=partner,
            scopes=scopes,
            auth_method=auth_method,
            jwks=public_jwks(key) if key else None,
        )
        return Registered(partner.id, partner.code, client.client_id, secret, auth_method, client.scopes, key)


_ALG_OF_KEY = {"EC": "ES256", "RSA": "RS256", "OKP": "EdDSA"}


def client_assertion(
    client_id: str,
    key: Key,
    audience: str,
    *,
    lifetime: int = 120,
    jti: str | None = None,
    alg: str | None = None,
    **extra: Any,
) -> str:
    """An RFC 7523 client assertion, as a partner builds it (alg from the key type by default)."""
    from auth.keys import jws_registry

    alg = alg or key.get("alg") or _ALG_OF_KEY[key.key_type]
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or uuid.uuid4().hex,
    }
    claims.update(extra)
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, registry=jws_registry([alg]))


def request_token(
    base_url: str,
    client_id: str,
    client_secret: str | None = None,
    scope: str | None = None,
    *,
    method: ClientAuthMethod | str = CLIENT_SECRET_BASIC,
    private_key: Key | None = None,
    assertion: str | None = None,
) -> httpx.Response:
    """POST /oauth/token (client_credentials) with the given client authentication; the raw response."""
    method = ClientAuthMethod(method)
    data: dict[str, str] = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    auth = None
    if method == CLIENT_SECRET_BASIC:
        auth = (client_id, client_secret or "")
    elif method == CLIENT_SECRET_POST:
        data.update(client_id=client_id, client_secret=client_secret or "")
    else:
        data["client_assertion_type"] = ASSERTION_TYPE
        data["client_assertion"] = assertion or client_assertion(
            client_id, private_key, base_url.rstrip("/") + "/oauth/token"
        )
    return httpx.post(base_url.rstrip("/") + "/oauth/token", data=data, auth=auth, timeout=30)


def get_token(
    base_url: str,
    client_id: str,
    client_secret: str | None,
    scope: str | None = None,
    *,
    private_key: Key | None = None,
) -> str:
    """An access token for the client: Basic auth with a secret, private_key_jwt with a key."""
    if private_key is not None:
        response = request_token(base_url, client_id, scope=scope, method=PRIVATE_KEY_JWT, private_key=private_key)
    else:
        response = request_token(base_url, client_id, client_secret, scope)
    assert response.status_code == 200, f"token request failed: {response.status_code} {response.text}"
    return response.json()["access_token"]


def post_graphql(base_url: str, token: str | None, query: str, variables: dict | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return httpx.post(base_url.rstrip("/") + "/graphql", json=body, headers=headers, timeout=30)


def graphql(base_url: str, token: str, query: str, variables: dict | None = None) -> dict:
    """POST /graphql; asserts HTTP 200 and returns the whole JSON (`data`, maybe `errors`)."""
    response = post_graphql(base_url, token, query, variables)
    assert response.status_code == 200, f"/graphql answered {response.status_code}: {response.text}"
    return response.json()


class GatewayClient:
    """A partner's view of the gateway: fetches a token on first use, renews it when close
    to expiry, and posts GraphQL operations."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        private_key: Key | None = None,
        scope: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.private_key = private_key
        self.scope = scope
        self._token: str | None = None
        self._expires_at = 0.0

    @classmethod
    def of(cls, base_url: str, registered: Registered, scope: str | None = None) -> GatewayClient:
        return cls(
            base_url, registered.client_id, registered.client_secret, private_key=registered.private_key, scope=scope
        )

    @property
    def token(self) -> str:
        if self._token is None or time.time() > self._expires_at - 30:
            if self.private_key is not None:
                response = request_token(
                    self.base_url,
                    self.client_id,
                    scope=self.scope,
                    method=PRIVATE_KEY_JWT,
                    private_key=self.private_key,
                )
            else:
                response = request_token(self.base_url, self.client_id, self.client_secret, self.scope)
            assert response.status_code == 200, f"token request failed: {response.status_code} {response.text}"
            body = response.json()
            self._token = body["access_token"]
            self._expires_at = time.time() + int(body.get("expires_in", 60))
        return self._token

    def gql(self, query: str, **variables: Any) -> dict:
        """POST the operation; asserts HTTP 200 and returns the JSON (`data`, maybe `errors`)."""
        return graphql(self.base_url, self.token, query, variables or None)

    def data(self, query: str, **variables: Any) -> dict:
        """Like `gql`, and asserts there are no errors; returns `data`."""
        result = self.gql(query, **variables)
        assert not result.get("errors"), result["errors"]
        return result["data"]
