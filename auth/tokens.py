"""Access tokens: RFC 9068 JWTs issued with Authlib's generator and checked with Authlib's
validator, plus the database bookkeeping around them (revoked tokens, used assertions).

A token carries ``iss``, ``sub`` and ``client_id`` (the client), ``aud`` (the gateway's
resource URI), ``scope``, ``jti``, ``iat``, ``exp``, ``partner``, ``partner_kind`` and
``token_epoch`` (see `EPOCH_CLAIM`); its header ``typ: at+jwt`` and the ``kid`` of the
ES256 key that signed it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

import sqlalchemy as sa
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator, JWTBearerTokenValidator
from authlib.oauth2.rfc9068.claims import JWTAccessTokenClaims
from joserfc import jws
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from sqlalchemy.dialects import postgresql, sqlite

from auth.keys import ACCESS_TOKEN_ALG, KeyStore
from gateway.db import Database, utcnow
from gateway.models import RevokedToken, UsedAssertion
from gateway.settings import Settings

#: The only algorithms an access token may name: what this server signs with.
#: `none` and every symmetric (HS*) algorithm are refused before any key is looked at.
ACCESS_TOKEN_ALGS = frozenset({ACCESS_TOKEN_ALG})
#: RFC 9068 §2.1 `typ` values.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: The client's token epoch when the token was issued (OAuthClient.token_epoch); absent in
#: tokens issued before it existed, which counts as epoch 0.
EPOCH_CLAIM = "token_epoch"

_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def safe_description(text: str) -> str:
    """RFC 6749 error descriptions allow printable ASCII except `"` and `\\`."""
    return _UNSAFE.sub("'", text)[:200]


def invalid(description: str) -> InvalidTokenError:
    return InvalidTokenError(description=safe_description(description))


# ---------------------------------------------------------------- issuing


class AccessTokenGenerator(JWTBearerTokenGenerator):
    """Authlib's RFC 9068 generator with our key store, audience, lifetime and claims.

    Runs inside Authlib's (synchronous) token endpoint; the caller makes sure the key
    store is fresh (`KeyStore.sync_current`) before the request reaches Authlib.
    """

    def __init__(self, *, keystore: KeyStore, settings: Settings) -> None:
        super().__init__(issuer=settings.issuer, alg=ACCESS_TOKEN_ALG, expires_generator=settings.access_token_ttl)
        self.keystore = keystore
        self.settings = settings

    def get_jwks(self) -> KeySet:
        # One key: joserfc picks it and writes its kid into the header.
        return KeySet([self.keystore.signing_key(ACCESS_TOKEN_ALG)])

    def get_audiences(self, client, user, scope) -> str:
        return self.settings.audience

    def get_jti(self, client, grant_type, user, scope) -> str:
        return secrets.token_urlsafe(18)

    def get_extra_claims(self, client, grant_type, user, scope) -> dict:
        return {"partner": client.partner_code, "partner_kind": client.partner_kind, EPOCH_CLAIM: client.token_epoch}


# ---------------------------------------------------------------- verifying


class AccessTokenValidator(JWTBearerTokenValidator):
    """Authlib's RFC 9068 validator bound to one already-resolved public key."""

    def __init__(self, *, keys: KeySet, settings: Settings) -> None:
        super().__init__(issuer=settings.issuer, resource_server=settings.audience)
        self._keys = keys

    def get_jwks(self) -> KeySet:
        return self._keys


def peek_header(token: str) -> dict:
    """The JOSE header of a compact JWS, unverified (to pick the key and refuse bad algs)."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        raise invalid("The token is not a compact JWS")
    try:
        return jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError, TypeError):
        raise invalid("The token is not a compact JWS") from None


async def verify_access_token(token: str, *, keystore: KeyStore, settings: Settings) -> JWTAccessTokenClaims:
    """Signature, kid, alg allow-list, typ, iss, aud, exp, iat and the required claims.

    Raises Authlib's `InvalidTokenError` with a description of the first failure. Says
    nothing about revocation or the client: see `auth.resource.TokenVerifier`.
    """
    header = peek_header(token)
    alg = header.get("alg")
    if alg not in ACCESS_TOKEN_ALGS:
        raise invalid(f"Algorithm {alg!r} is not accepted; access tokens are {', '.join(sorted(ACCESS_TOKEN_ALGS))}")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise invalid("The token is not an RFC 9068 access token (typ at+jwt)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise invalid("The token names no kid")
    key = await keystore.public_key(kid, alg)
    if key is None:
        raise invalid(f"No published key has kid {kid[:64]!r}")
    validator = AccessTokenValidator(keys=KeySet([key]), settings=settings)
    try:
        claims = validator.authenticate_token(token)
    except InvalidTokenError:
        raise invalid("The token signature does not verify") from None
    try:
        claims.validate()
    except ExpiredTokenError:
        raise invalid("The token has expired") from None
    except MissingClaimError as exc:
        raise invalid(f"The token lacks claims: {exc.description}") from None
    except InvalidClaimError as exc:
        raise invalid(f"The token's {exc.claim!r} claim is not accepted here") from None
    except JoseError as exc:
        raise invalid(f"The token is not accepted: {exc.description}") from None
    if claims.get("sub") != claims.get("client_id") or not isinstance(claims.get("client_id"), str):
        raise invalid("The token's sub and client_id differ")
    if not isinstance(claims.get("scope", ""), str):
        raise invalid("The token's scope claim is not a string")
    epoch = claims.get(EPOCH_CLAIM, 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise invalid(f"The token's {EPOCH_CLAIM} claim is not accepted here")
    return claims


def epoch_of(claims: dict) -> int:
    """The client epoch a token was issued in (checked by `verify_access_token`)."""
    return claims.get(EPOCH_CLAIM, 0)


def expiry_of(claims: dict) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)


# ---------------------------------------------------------------- bookkeeping


def _insert_ignoring_duplicates(db: Database, model, values: dict):
    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    return insert(model).values(**values).on_conflict_do_nothing()


async def revoke(db: Database, *, jti: str, expires_at: dt.datetime) -> None:
    """Refuse the token `jti` from now on (idempotent). Kept until it would have expired."""
    async with db.transaction() as session:
        await session.execute(_insert_ignoring_duplicates(db, RevokedToken, {"jti": jti, "expires_at": expires_at}))
        # Housekeeping on the way: a revoked jti past its expiry needs no memory.
        await session.execute(sa.delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))


async def use_assertion(db: Database, *, client_id: str, jti: str, expires_at: dt.datetime) -> bool:
    """Record a private_key_jwt assertion's jti; False when that client used it before."""
    async with db.transaction() as session:
        result = await session.execute(
            _insert_ignoring_duplicates(
                db, UsedAssertion, {"jti": jti, "client_id": client_id, "expires_at": expires_at}
            )
        )
        # An expired assertion is refused on its exp already: forget old jtis.
        await session.execute(
            sa.delete(UsedAssertion).where(UsedAssertion.expires_at < utcnow() - dt.timedelta(minutes=5))
        )
        return result.rowcount == 1


async def purge_expired(db: Database) -> int:
    """Forget revoked tokens and used assertions past their expiry (nothing can replay them)."""
    now = utcnow()
    async with db.transaction() as session:
        a = await session.execute(sa.delete(RevokedToken).where(RevokedToken.expires_at < now))
        b = await session.execute(sa.delete(UsedAssertion).where(UsedAssertion.expires_at < now))
        return (a.rowcount or 0) + (b.rowcount or 0)
