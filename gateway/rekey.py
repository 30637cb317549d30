"""Re-seal everything sealed at rest under a new GATEWAY_SECRET_KEY (`mileage-gateway rekey`).

Sealed with the secret key: the private halves of the signing keys (auth/keys.py), connector
credentials (gateway/connectors.py) and webhook signing secrets (gateway/webhooks.py). The
command runs with GATEWAY_SECRET_KEY set to the new key and GATEWAY_OLD_SECRET_KEYS to the
old one(s) (`settings.secret_key` is then a `SecretKey` carrying them): each value that a
previous key opens is sealed again with the new key, in one transaction. A value the new
key opens already is left alone, so a second run changes nothing; a value no key opens
stops the whole run and nothing is written. docs/operations.md, "Changing the secret key",
gives the procedure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from auth.keys import KeyStoreError, decrypt_private_key_with, encrypt_private_key
from gateway.connectors import credentials_purpose
from gateway.db import Database
from gateway.models import ConnectorConfig, SigningKey, WebhookEndpoint
from gateway.secretbox import SealError, seal, unseal_with

# The purpose a webhook secret's sealing binds in, kept where the secret is sealed.
from gateway.webhooks import _secret_purpose as webhook_secret_purpose


class RekeyError(Exception):
    """Some sealed value opens with neither the new key nor an old one: nothing was changed."""


@dataclass
class Tally:
    resealed: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"resealed": self.resealed, "already_current": self.current}


async def rekey(*, db: Database, secret_key: str) -> dict[str, dict[str, int]]:
    """Re-seal every sealed value with `secret_key` (its `previous` keys open the old ones).

    Returns, per kind of value, how many were re-sealed and how many were current already."""
    async with db.transaction() as session:
        tallies = {
            "signing_keys": await _signing_keys(session, secret_key),
            "connector_credentials": await _connector_credentials(session, secret_key),
            "webhook_secrets": await _webhook_secrets(session, secret_key),
        }
        unreadable = [item for tally in tallies.values() for item in tally.unreadable]
        if unreadable:
            # Raising rolls the transaction back: a half re-keyed database helps nobody.
            raise RekeyError(
                f"{len(unreadable)} sealed value(s) open with neither GATEWAY_SECRET_KEY nor GATEWAY_OLD_SECRET_KEYS "
                f"({', '.join(unreadable[:10])}); nothing was changed"
            )
    return {name: tally.as_dict() for name, tally in tallies.items()}


async def _locked(session: AsyncSession, model, *where) -> list:
    # Locked until the commit: a gateway changing a credential meanwhile waits, and its
    # change is neither lost nor left sealed with the old key.
    return list((await session.execute(sa.select(model).where(*where).with_for_update())).scalars().all())


async def _signing_keys(session: AsyncSession, secret_key: str) -> Tally:
    tally = Tally()
    for row in await _locked(session, SigningKey):
        try:
            private_jwk, current = decrypt_private_key_with(
                secret_key, kid=row.kid, alg=row.alg, blob=row.private_key_encrypted
            )
        except KeyStoreError:
            tally.unreadable.append(f"signing key {row.kid}")
            continue
        if current:
            tally.current += 1
            continue
        row.private_key_encrypted = encrypt_private_key(secret_key, kid=row.kid, alg=row.alg, private_jwk=private_jwk)
        tally.resealed += 1
    return tally


async def _connector_credentials(session: AsyncSession, secret_key: str) -> Tally:
    tally = Tally()
    for row in await _locked(session, ConnectorConfig, ConnectorConfig.credentials.is_not(None)):
        purpose = credentials_purpose(row.partner_id, row.kind)
        row.credentials = _reseal(secret_key, row.credentials, purpose, tally, f"connector {row.id} credentials")
    return tally


async def _webhook_secrets(session: AsyncSession, secret_key: str) -> Tally:
    tally = Tally()
    for row in await _locked(session, WebhookEndpoint):
        purpose = webhook_secret_purpose(row.partner_id)
        row.secret = _reseal(secret_key, row.secret, purpose, tally, f"webhook endpoint {row.id} secret")
    return tally


def _reseal(secret_key: str, sealed: str, purpose: str, tally: Tally, what: str) -> str:
    try:
        plaintext, current = unseal_with(secret_key, sealed, purpose=purpose)
    except SealError:
        tally.unreadable.append(what)
        return sealed
    if current:
        tally.current += 1
        return sealed
    tally.resealed += 1
    return seal(secret_key, plaintext, purpose=purpose)
