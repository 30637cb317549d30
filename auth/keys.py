"""The key store: asymmetric signing keys, their rotation, and the published JWKS.

Two kinds of key, one current (signing) key of each at any time:

- ``ES256`` (P-256) signs access tokens. Rotation retires the current key; it stays in
  the JWKS until every token it signed has expired (``publish_until``).
- ``EdDSA`` (Ed25519) signs donation statements and settlements (detached compact JWS).
  A retired document key stays published for good, since the documents it signed live on.

Private halves are stored only encrypted (AES-256-GCM, key derived with HKDF-SHA256 from
``settings.secret_key``; the row's kid and alg are bound in as associated data). Several
processes share one database: each keeps the keys in memory, notices a rotation made
elsewhere (a token with an unknown ``kid``, a changed current key, or every
``REFRESH_SECONDS``), and the database allows only one current key per algorithm.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, import_key
from joserfc.jws import JWSRegistry
from sqlalchemy.exc import IntegrityError

from gateway.db import Database, utcnow
from gateway.models import SigningKey
from gateway.secretbox import opening_keys
from gateway.settings import Settings

#: Signs access tokens (RFC 9068).
ACCESS_TOKEN_ALG = "ES256"
#: Signs statements and settlements (contract: "alg: EdDSA (Ed25519)").
DOCUMENT_ALG = "EdDSA"
ALGS = (ACCESS_TOKEN_ALG, DOCUMENT_ALG)


class _ContractEdDSA(EdDSAAlgorithm):
    # joserfc warns that RFC 9864 deprecates the polymorphic "EdDSA" name in favour of
    # "Ed25519"; the partner contract names EdDSA (RFC 8037), which every JOSE library verifies.
    security_warning = None


class _ContractRegistry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, DOCUMENT_ALG: _ContractEdDSA()}


def jws_registry(algorithms: list[str]) -> JWSRegistry:
    """A joserfc JWS registry allowing exactly `algorithms` (EdDSA without the warning)."""
    return _ContractRegistry(algorithms=list(algorithms))


_ENVELOPE_VERSION = b"\x01"


class KeyStoreError(RuntimeError):
    """The key store cannot do what was asked (no keys yet, wrong secret key...)."""


# ---------------------------------------------------------------- encryption at rest


def _wrapping_key(secret_key: str) -> bytes:
    if not secret_key:
        raise KeyStoreError("settings.secret_key is empty: private keys cannot be encrypted")
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"mileage-gateway/signing-keys",
        info=b"AES-256-GCM wrapping key v1",
    ).derive(secret_key.encode())


def encrypt_private_key(secret_key: str, *, kid: str, alg: str, private_jwk: dict) -> bytes:
    """Version byte, 96-bit nonce, AES-GCM ciphertext of the private JWK (JSON)."""
    nonce = os.urandom(12)
    plaintext = json.dumps(private_jwk, separators=(",", ":")).encode()
    ciphertext = AESGCM(_wrapping_key(secret_key)).encrypt(nonce, plaintext, f"{kid}|{alg}".encode())
    return _ENVELOPE_VERSION + nonce + ciphertext


def decrypt_private_key(secret_key: str, *, kid: str, alg: str, blob: bytes) -> dict:
    """The private JWK; during a key change a previous key may open it (gateway.secretbox)."""
    return decrypt_private_key_with(secret_key, kid=kid, alg=alg, blob=blob)[0]


def decrypt_private_key_with(secret_key: str, *, kid: str, alg: str, blob: bytes) -> tuple[dict, bool]:
    """The private JWK, and whether the current key (not a previous one) opened it."""
    blob = bytes(blob)
    if blob[:1] != _ENVELOPE_VERSION:
        raise KeyStoreError(f"signing key {kid}: unknown envelope version")
    for index, key in enumerate(opening_keys(secret_key)):
        try:
            plaintext = AESGCM(_wrapping_key(key)).decrypt(blob[1:13], blob[13:], f"{kid}|{alg}".encode())
        except InvalidTag:
            continue
        return json.loads(plaintext), index == 0
    raise KeyStoreError(
        f"signing key {kid} does not decrypt: was it made with another GATEWAY_SECRET_KEY "
        "(a key being replaced belongs in GATEWAY_OLD_SECRET_KEYS)?"
    )


# ---------------------------------------------------------------- keys


def generate_key(alg: str) -> Key:
    params = {"alg": alg, "use": "sig"}
    if alg == ACCESS_TOKEN_ALG:
        return ECKey.generate_key("P-256", parameters=params, private=True, auto_kid=True)
    if alg == DOCUMENT_ALG:
        return OKPKey.generate_key("Ed25519", parameters=params, private=True, auto_kid=True)
    raise ValueError(f"no key type for alg {alg!r}")


def _new_row(alg: str, secret_key: str) -> SigningKey:
    key = generate_key(alg)
    kid = key.kid
    return SigningKey(
        kid=kid,
        alg=alg,
        private_key_encrypted=encrypt_private_key(secret_key, kid=kid, alg=alg, private_jwk=key.as_dict(private=True)),
        public_jwk=json.dumps(key.as_dict(private=False), sort_keys=True),
        created_at=utcnow(),
    )


def verify_detached(payload: bytes, signature: str, jwks: dict, *, alg: str = DOCUMENT_ALG) -> bool:
    """Check a detached compact JWS (``header..signature``) over ``payload`` with a JWKS.

    What a partner holding a document and ``/.well-known/jwks.json`` does; no gateway call.
    """
    try:
        header = jws.extract_compact(signature.encode(), payload=payload).headers()
        if header.get("alg") != alg or not header.get("kid"):
            return False
        keys = KeySet.import_key_set({"keys": [k for k in jwks.get("keys", []) if k.get("kid") == header["kid"]]})
        if not keys.keys:
            return False
        jws.deserialize_compact(signature, keys, payload=payload, registry=jws_registry([alg]))
        return True
    except (JoseError, ValueError, KeyError, TypeError):
        return False


@dataclass(frozen=True)
class PublishedKey:
    kid: str
    alg: str
    public: Key
    public_jwk: dict
    current: bool
    #: None: published for as long as it exists (the current keys, retired document keys).
    publish_until: dt.datetime | None

    def published(self, now: dt.datetime) -> bool:
        return self.publish_until is None or self.publish_until > now


class KeyStore:
    """Signing keys of this deployment, shared by every process through the database."""

    #: A process re-reads the keys at least this often.
    REFRESH_SECONDS = 60
    #: An unknown kid triggers a reload at most this often (a stream of forged kids
    #: must not become a stream of queries).
    UNKNOWN_KID_RELOAD_SECONDS = 1.0
    #: Beyond the token lifetime, how long a retired access-token key stays published:
    #: covers another process signing with it until it notices the rotation, and clock skew.
    PUBLISH_MARGIN_SECONDS = REFRESH_SECONDS + 60

    def __init__(self, *, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._published: dict[str, PublishedKey] = {}
        self._signing: dict[str, Key] = {}
        self._loaded_at = float("-inf")
        self._last_unknown_reload = float("-inf")
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------ lifecycle

    async def ensure_keys(self) -> None:
        """Create a current key of each kind if there is none (first start), rotate the
        access-token key if it is due (`rotate_if_due`), then load them.

        Safe when several processes start at once: one insert wins, the others find it.
        """
        for attempt in range(5):
            try:
                async with self.db.transaction() as session:
                    have = {row.alg for row in (await session.execute(self._current_stmt())).scalars()}
                    for alg in ALGS:
                        if alg not in have:
                            session.add(_new_row(alg, self.settings.secret_key))
                break
            except IntegrityError:
                # Another process created the key between our read and our insert.
                await asyncio.sleep(0.05 * (attempt + 1))
        else:  # pragma: no cover - five lost races in a row
            raise KeyStoreError("could not create the initial signing keys")
        # Loads the keys, rotating the access-token key first if it is due.
        if self.settings.signing_key_rotation_days > 0:
            await self.rotate_if_due()
        else:
            await self.refresh()

    async def rotate(self, algs: Iterable[str] = ALGS, *, older_than: dt.timedelta | None = None) -> list[dict]:
        """Make a new current key for each alg and retire the old one.

        A retired access-token key stays published for the token lifetime plus a margin;
        a retired document key stays published for good. With ``older_than``, only keys
        at least that old are rotated (checked inside the transaction, so concurrent
        callers rotate once). Returns what changed.
        """
        algs = tuple(algs)
        for alg in algs:
            if alg not in ALGS:
                raise ValueError(f"unknown signing alg {alg!r}")
        for attempt in range(5):
            try:
                changes = await self._rotate_once(algs, older_than)
                break
            except IntegrityError:
                # A concurrent rotation made its key first; look again.
                await asyncio.sleep(0.05 * (attempt + 1))
        else:  # pragma: no cover
            raise KeyStoreError("could not rotate the signing keys")
        await self.refresh()
        return changes

    async def rotate_if_due(self) -> list[dict]:
        """Rotate the access-token key once it is `signing_key_rotation_days` old."""
        days = self.settings.signing_key_rotation_days
        if days <= 0:
            return []
        return await self.rotate((ACCESS_TOKEN_ALG,), older_than=dt.timedelta(days=days))

    async def _rotate_once(self, algs: tuple[str, ...], older_than: dt.timedelta | None) -> list[dict]:
        changes: list[dict] = []
        async with self.db.transaction() as session:
            now = utcnow()
            stmt = self._current_stmt().where(SigningKey.alg.in_(algs))
            if self.db.dialect == "postgresql":
                stmt = stmt.with_for_update()
            current = {row.alg: row for row in (await session.execute(stmt)).scalars()}
            for alg in algs:
                old = current.get(alg)
                if old is not None and older_than is not None and now - old.created_at < older_than:
                    continue
                if old is not None:
                    old.retired_at = now
                    old.publish_until = (
                        now + dt.timedelta(seconds=self.settings.access_token_ttl + self.PUBLISH_MARGIN_SECONDS)
                        if alg == ACCESS_TOKEN_ALG
                        else None
                    )
                    # The retirement must reach the database before the new current key
                    # (one current key per alg is a unique index).
                    await session.flush()
                new = _new_row(alg, self.settings.secret_key)
                session.add(new)
                await session.flush()
                changes.append(
                    {
                        "alg": alg,
                        "kid": new.kid,
                        "retired_kid": old.kid if old else None,
                        # When the old key leaves the JWKS: document keys never do.
                        "retired_published_until": (
                            None
                            if old is None
                            else old.publish_until.isoformat()
                            if old.publish_until
                            else "indefinitely"
                        ),
                    }
                )
        return changes

    # ------------------------------------------------------------ loading

    @staticmethod
    def _current_stmt() -> sa.Select:
        return sa.select(SigningKey).where(SigningKey.retired_at.is_(None))

    async def refresh(self) -> None:
        """Re-read every published key and decrypt the current ones."""
        async with self._lock:
            await self._reload()

    async def refresh_if_stale(self) -> None:
        if self._stale():
            async with self._lock:
                if self._stale():  # another task may have reloaded while we waited
                    await self._reload()

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at >= self.REFRESH_SECONDS

    async def _reload(self) -> None:
        now = utcnow()
        async with self.db.session() as session:
            rows = (
                (
                    await session.execute(
                        sa.select(SigningKey).where(
                            sa.or_(SigningKey.publish_until.is_(None), SigningKey.publish_until > now)
                        )
                    )
                )
                .scalars()
                .all()
            )
        published: dict[str, PublishedKey] = {}
        signing: dict[str, Key] = {}
        for row in rows:
            public_jwk = json.loads(row.public_jwk)
            published[row.kid] = PublishedKey(
                kid=row.kid,
                alg=row.alg,
                public=import_key(public_jwk),
                public_jwk=public_jwk,
                current=row.retired_at is None,
                publish_until=row.publish_until,
            )
            if row.retired_at is None:
                private = decrypt_private_key(
                    self.settings.secret_key, kid=row.kid, alg=row.alg, blob=row.private_key_encrypted
                )
                signing[row.alg] = import_key(private)
        self._published = published
        self._signing = signing
        self._loaded_at = time.monotonic()

    async def sync_current(self) -> None:
        """One small query: reload if another process rotated (the current kids changed)."""
        if self._stale():
            await self.refresh_if_stale()
            return
        async with self.db.session() as session:
            rows = (
                await session.execute(sa.select(SigningKey.alg, SigningKey.kid).where(SigningKey.retired_at.is_(None)))
            ).all()
        if dict(rows) != {alg: key.kid for alg, key in self._signing.items()}:
            await self.refresh()

    # ------------------------------------------------------------ use

    def signing_key(self, alg: str = ACCESS_TOKEN_ALG) -> Key:
        """The current private key for ``alg`` as last loaded (callers refresh first)."""
        key = self._signing.get(alg)
        if key is None:
            raise KeyStoreError(f"no current {alg} signing key: call `await keystore.ensure_keys()` first")
        return key

    def current_kid(self, alg: str = ACCESS_TOKEN_ALG) -> str:
        return self.signing_key(alg).kid

    def public_key_set(self, alg: str) -> KeySet:
        """Published public keys for ``alg`` as last loaded."""
        now = utcnow()
        return KeySet([k.public for k in self._published.values() if k.alg == alg and k.published(now)])

    async def public_key(self, kid: str, alg: str) -> Key | None:
        """The published public key ``kid`` for ``alg``; an unknown kid reloads the keys once
        (throttled), since another process may have rotated."""
        await self.refresh_if_stale()
        found = self._lookup(kid, alg)
        if found is None and time.monotonic() - self._last_unknown_reload >= self.UNKNOWN_KID_RELOAD_SECONDS:
            self._last_unknown_reload = time.monotonic()
            await self.refresh()
            found = self._lookup(kid, alg)
        return found

    def _lookup(self, kid: str, alg: str) -> Key | None:
        key = self._published.get(kid)
        if key is None or key.alg != alg or not key.published(utcnow()):
            return None
        return key.public

    async def jwks(self) -> dict:
        """``{"keys": [...]}``: every published public key, both kinds, current first."""
        await self.sync_current()
        now = utcnow()
        keys = sorted(
            (k for k in self._published.values() if k.published(now)),
            key=lambda k: (not k.current, k.alg, k.kid),
        )
        return {"keys": [k.public_jwk for k in keys]}

    async def sign_detached(self, payload: bytes) -> str:
        """Detached compact JWS (RFC 7515 Appendix F, ``header..signature``) over
        ``payload`` with the current EdDSA (Ed25519) key; the header carries its kid."""
        await self.sync_current()
        key = self.signing_key(DOCUMENT_ALG)
        compact = jws.serialize_compact(
            {"alg": DOCUMENT_ALG, "kid": key.kid}, payload, key, registry=jws_registry([DOCUMENT_ALG])
        )
        return jws.detach_content(compact)

    async def verify_detached(self, payload: bytes, signature: str) -> bool:
        """Check a detached signature made by any published document key."""
        try:
            kid = jws.extract_compact(signature.encode(), payload=payload).headers().get("kid")
        except (JoseError, ValueError):
            return False
        if not kid or await self.public_key(kid, DOCUMENT_ALG) is None:
            return False
        return verify_detached(payload, signature, await self.jwks())


async def rotate_cli(settings: Settings) -> dict:
    """`mileage-gateway keys rotate`: new current keys of both kinds; returns a JSON-able report."""
    db = Database(settings.database_url)
    try:
        store = KeyStore(db=db, settings=settings)
        rotated = await store.rotate()
        published = (await store.jwks())["keys"]
        return {
            "rotated": rotated,
            "published": [{"kid": k["kid"], "alg": k["alg"]} for k in published],
        }
    finally:
        await db.dispose()
