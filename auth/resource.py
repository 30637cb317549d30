"""Resource protection for /graphql: the bearer token becomes a `Principal` or a 401.

A token is accepted when `auth.tokens.verify_access_token` accepts it (signature by a
published ES256 key, alg allow-list, typ, iss, aud, exp) and, in the database, its jti is
not revoked, its client exists and is enabled, and the token was issued in the client's
current token epoch (a secret rotation or a disable since then revokes it). The
principal's scopes are the token's scopes that the client still holds (a scope removed
from a client stops working at once).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from starlette.requests import Request
from starlette.responses import JSONResponse

from auth.keys import KeyStore
from auth.principal import Principal
from auth.tokens import epoch_of, expiry_of, safe_description, verify_access_token
from gateway.db import Database
from gateway.models import OAuthClient, Partner, RevokedToken
from gateway.settings import Settings


class InvalidToken(Exception):
    """The request carries no acceptable access token: answer 401 (RFC 6750 §3.1)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = safe_description(description)

    def response(self) -> JSONResponse:
        # Authlib's RFC 6750 error writes the WWW-Authenticate challenge.
        error = InvalidTokenError(description=self.description)
        return JSONResponse(
            {
                "error": error.error,
                "error_description": self.description,
                "errors": [{"message": self.description, "extensions": {"code": "UNAUTHENTICATED"}}],
            },
            status_code=401,
            headers={k: v for k, v in error.get_headers() if k.lower() == "www-authenticate"}
            | {"Cache-Control": "no-store"},
        )


@dataclass(frozen=True)
class VerifiedToken:
    principal: Principal
    claims: dict


class TokenVerifier:
    """Checks bearer tokens for /graphql (and for introspection)."""

    def __init__(self, *, db: Database, settings: Settings, keystore: KeyStore) -> None:
        self.db = db
        self.settings = settings
        self.keystore = keystore

    async def verify_request(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not header:
            raise InvalidToken("The request has no bearer token (Authorization: Bearer <token>)")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("The Authorization header must be 'Bearer <access token>'")
        return await self.verify(token.strip())

    async def verify(self, token: str) -> Principal:
        return (await self.inspect(token)).principal

    async def inspect(self, token: str) -> VerifiedToken:
        """Like `verify`, with the token's claims (introspection reports them)."""
        try:
            claims = await verify_access_token(token, keystore=self.keystore, settings=self.settings)
        except InvalidTokenError as exc:
            raise InvalidToken(exc.get_error_description()) from None
        async with self.db.session() as session:
            row = (
                await session.execute(
                    sa.select(
                        OAuthClient.enabled,
                        OAuthClient.scope,
                        OAuthClient.partner_id,
                        OAuthClient.persisted_queries_only,
                        OAuthClient.token_epoch,
                        Partner.code,
                        Partner.kind,
                        RevokedToken.jti,
                    )
                    .join(Partner, Partner.id == OAuthClient.partner_id)
                    .outerjoin(RevokedToken, RevokedToken.jti == claims["jti"])
                    .where(OAuthClient.client_id == claims["client_id"])
                )
            ).first()
        if row is None:
            raise InvalidToken("The token's client does not exist")
        enabled, registered_scope, partner_id, persisted_only, token_epoch, partner_code, partner_kind, revoked_jti = (
            row
        )
        if revoked_jti is not None:
            raise InvalidToken("The token has been revoked")
        if not enabled:
            raise InvalidToken("The token's client is disabled")
        if epoch_of(claims) != token_epoch:
            raise InvalidToken(
                "The token has been revoked: its client's secret was rotated or the client disabled since"
            )
        if claims.get("partner") != partner_code or claims.get("partner_kind") != partner_kind.value:
            raise InvalidToken("The token's partner does not match its client")
        scopes = frozenset(claims.get("scope", "").split()) & frozenset(registered_scope.split())
        principal = Principal(
            client_id=claims["client_id"],
            partner_id=partner_id,
            partner_code=partner_code,
            partner_kind=partner_kind.value,
            scopes=scopes,
            jti=claims["jti"],
            expires_at=expiry_of(claims),
            persisted_queries_only=bool(persisted_only),
        )
        return VerifiedToken(principal=principal, claims=dict(claims))
