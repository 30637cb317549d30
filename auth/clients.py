"""OAuth client registration: ids, secrets (stored only as Argon2id hashes), JWKS for private_key_jwt."""

from __future__ import annotations

import json
import secrets

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession

from auth.scopes import invalid_scopes
from gateway.errors import InvalidInput, NotFound
from gateway.models import ClientAuthMethod, OAuthClient, Partner

_hasher = PasswordHasher()


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret_hash: str | None, secret: str) -> bool:
    if not secret_hash:
        return False
    try:
        return _hasher.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def new_client_id() -> str:
    return "cl_" + secrets.token_hex(12)


def new_client_secret() -> str:
    return "cs_" + secrets.token_urlsafe(32)


def parse_public_jwks(text: str | None) -> KeySet:
    """A client's registered JWKS: valid JSON, asymmetric public keys only."""
    if not text:
        raise InvalidInput("PRIVATE_KEY_JWT needs the client's public keys as a JWKS", field=["input", "jwks"])
    try:
        data = json.loads(text)
        keys = data["keys"]
        if not keys:
            raise ValueError("empty")
        for key in keys:
            if key.get("kty") not in ("EC", "RSA", "OKP") or "d" in key or "p" in key:
                raise ValueError("only public asymmetric keys are accepted")
        return KeySet.import_key_set(data)
    except (ValueError, KeyError, TypeError, JoseError) as exc:
        raise InvalidInput(f"jwks is not a JWKS of public keys: {exc}", field=["input", "jwks"]) from exc


async def get_client(session: AsyncSession, client_id: str) -> OAuthClient | None:
    return (
        await session.execute(sa.select(OAuthClient).where(OAuthClient.client_id == client_id))
    ).scalar_one_or_none()


async def create_client(
    *,
    session: AsyncSession,
    partner: Partner,
    scopes: list[str],
    auth_method: ClientAuthMethod,
    jwks: str | None = None,
) -> tuple[OAuthClient, str | None]:
    """Register a client; returns it and its secret (None for private_key_jwt), shown once."""
    scopes = sorted(set(scopes))
    if not scopes:
        raise InvalidInput("A client needs at least one scope", field=["input", "scopes"])
    bad = invalid_scopes(partner.kind.value, scopes)
    if bad:
        raise InvalidInput(
            f"Scopes not available to a {partner.kind.value} partner: {', '.join(bad)}", field=["input", "scopes"]
        )
    secret = None
    secret_hash = None
    if auth_method == ClientAuthMethod.PRIVATE_KEY_JWT:
        parse_public_jwks(jwks)
    else:
        if jwks:
            raise InvalidInput("jwks is for PRIVATE_KEY_JWT clients only", field=["input", "jwks"])
        secret = new_client_secret()
        secret_hash = hash_secret(secret)
    client = OAuthClient(
        client_id=new_client_id(),
        partner_id=partner.id,
        secret_hash=secret_hash,
        auth_method=auth_method,
        scope=" ".join(scopes),
        jwks=jwks if auth_method == ClientAuthMethod.PRIVATE_KEY_JWT else None,
        enabled=True,
    )
    session.add(client)
    await session.flush()
    return client, secret


async def _owned(session: AsyncSession, client_id: str, partner_id: int | None) -> OAuthClient:
    # Locked: two concurrent rotations each move the token epoch on (no lost update).
    client = (
        await session.execute(sa.select(OAuthClient).where(OAuthClient.client_id == client_id).with_for_update())
    ).scalar_one_or_none()
    # Another partner's client answers exactly like an unknown one.
    if client is None or (partner_id is not None and client.partner_id != partner_id):
        raise NotFound(f"No client {client_id!r}", field=["input", "clientId"])
    return client


def revoke_tokens(client: OAuthClient) -> None:
    """Every access token issued to `client` so far is refused from the commit on.

    Tokens carry the epoch of their client (claim `token_epoch`); the verifier accepts the
    current epoch only (auth/resource.py). The caller holds the row locked and flushes."""
    client.token_epoch = (client.token_epoch or 0) + 1


async def rotate_secret(*, session: AsyncSession, client_id: str, partner_id: int | None) -> tuple[OAuthClient, str]:
    """A new secret replaces the old one at once. `partner_id` None means ADMIN (any client)."""
    client = await _owned(session, client_id, partner_id)
    if client.auth_method == ClientAuthMethod.PRIVATE_KEY_JWT:
        raise InvalidInput(
            "A PRIVATE_KEY_JWT client has no secret; register new keys instead", field=["input", "clientId"]
        )
    secret = new_client_secret()
    client.secret_hash = hash_secret(secret)
    revoke_tokens(client)
    await session.flush()
    return client, secret


async def disable_client(*, session: AsyncSession, client_id: str, partner_id: int | None) -> OAuthClient:
    """The client can get no new token; tokens it holds are refused at once, for good (even
    if the client is enabled again)."""
    client = await _owned(session, client_id, partner_id)
    client.enabled = False
    revoke_tokens(client)
    await session.flush()
    return client
