"""Secrets at rest: connector credentials and webhook signing secrets.

AES-256-GCM with a key derived (HKDF-SHA256) from `settings.secret_key`. Each sealed value
is bound to its purpose (associated data, e.g. "webhook-secret:42"), so a value copied from
one row to another does not open. Format: "v1." + URL-safe base64 of nonce || ciphertext.

Changing the secret key follows `cryptography`'s MultiFernet: `settings.secret_key` is a
`SecretKey`, the new key carrying the keys it replaces (GATEWAY_OLD_SECRET_KEYS). Sealing
uses the new key only; opening tries the new key, then the old ones, so a gateway reads
what was sealed before while `mileage-gateway rekey` (gateway/rekey.py) re-seals it all.
"""

from __future__ import annotations

import base64
import functools
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "v1."


class SealError(Exception):
    """A sealed value does not open: another secret key, another purpose, or tampered with."""


class SecretKey(str):
    """The current secret key (a `str`: whatever seals or signs uses it as is), carrying
    the keys it replaced, `previous`, which only ever open what was sealed before."""

    previous: tuple[str, ...]

    def __new__(cls, current: str, previous: tuple[str, ...] | list[str] = ()) -> SecretKey:
        key = super().__new__(cls, current)
        key.previous = tuple(k for k in previous if k and k != current)
        return key

    def __repr__(self) -> str:
        return f"SecretKey(<hidden>, {len(self.previous)} previous)"


#: GATEWAY_SECRET_KEY outside development: at least this much key material.
MIN_KEY_BITS = 256
#: ... and not a run of a few characters repeated (random keys of that length have dozens).
MIN_DISTINCT_CHARACTERS = 10
_HEX = frozenset("0123456789abcdefABCDEF")
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/")


def weakness(secret_key: str) -> str | None:
    """Why `secret_key` is too weak to protect a production gateway, or None.

    The rule: the key is hexadecimal (4 bits a digit) or base64, URL-safe or standard,
    padding optional (6 bits a character), and holds at least 256 bits: 64 hex digits,
    or 43 base64 characters (`secrets.token_urlsafe(32)`, what `mileage-gateway secret-key`
    prints). A string of hex digits only counts as hex. It must also have at least 10
    different characters, which any random key of that length has."""
    body = secret_key.rstrip("=")
    if not body:
        return "it is empty"
    if set(body) <= _HEX:
        bits, encoding = 4 * len(body), "hex digits"
    elif set(body) <= _BASE64:
        bits, encoding = 6 * len(body), "base64 characters"
    else:
        return "it is neither base64 nor hex (a passphrase is not key material)"
    if bits < MIN_KEY_BITS:
        return f"its {len(body)} {encoding} hold {bits} bits, fewer than {MIN_KEY_BITS}"
    if len(set(body)) < MIN_DISTINCT_CHARACTERS:
        return f"it repeats {len(set(body))} different characters: it is not random"
    return None


def opening_keys(secret_key: str) -> tuple[str, ...]:
    """The keys to try when opening, the current one first."""
    return (str(secret_key), *getattr(secret_key, "previous", ()))


@functools.lru_cache(maxsize=8)
def _key(secret_key: str) -> bytes:
    if not secret_key:
        raise SealError("no secret key configured (GATEWAY_SECRET_KEY)")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mileage-gateway secretbox v1").derive(
        secret_key.encode()
    )


def seal(secret_key: str, plaintext: bytes | str, *, purpose: str) -> str:
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    nonce = os.urandom(12)
    sealed = AESGCM(_key(secret_key)).encrypt(nonce, data, purpose.encode())
    return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def unseal(secret_key: str, token: str, *, purpose: str) -> bytes:
    """Open with the current key or, during a key change, one of the previous ones."""
    return unseal_with(secret_key, token, purpose=purpose)[0]


def unseal_with(secret_key: str, token: str, *, purpose: str) -> tuple[bytes, bool]:
    """The plaintext, and whether the current key (rather than a previous one) opened it."""
    if not token.startswith(_PREFIX):
        raise SealError("unknown sealed-value format")
    try:
        raw = base64.urlsafe_b64decode(token[len(_PREFIX) :])
    except ValueError as exc:
        raise SealError("the sealed value is not base64") from exc
    for index, key in enumerate(opening_keys(secret_key)):
        try:
            return AESGCM(_key(key)).decrypt(raw[:12], raw[12:], purpose.encode()), index == 0
        except (InvalidTag, ValueError):
            continue
    raise SealError("the sealed value does not open with this key (or a previous one) and purpose")


def seal_json(secret_key: str, value: dict, *, purpose: str) -> str:
    return seal(secret_key, json.dumps(value, separators=(",", ":"), sort_keys=True), purpose=purpose)


def unseal_json(secret_key: str, token: str | None, *, purpose: str) -> dict:
    if not token:
        return {}
    return json.loads(unseal(secret_key, token, purpose=purpose))


__all__ = [
    "MIN_KEY_BITS",
    "SealError",
    "SecretKey",
    "weakness",
    "opening_keys",
    "seal",
    "seal_json",
    "unseal",
    "unseal_json",
    "unseal_with",
]
