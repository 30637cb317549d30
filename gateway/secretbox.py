"""Secrets at rest: connector credentials and webhook signing secrets.

AES-256-GCM with a key derived (HKDF-SHA256) from `settings.secret_key`. Each sealed value
is bound to its purpose (associated data, e.g. "webhook-secret:42"), so a value copied from
one row to another does not open. Format: "v1." + URL-safe base64 of nonce || ciphertext.
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
    if not token.startswith(_PREFIX):
        raise SealError("unknown sealed-value format")
    try:
        raw = base64.urlsafe_b64decode(token[len(_PREFIX) :])
        return AESGCM(_key(secret_key)).decrypt(raw[:12], raw[12:], purpose.encode())
    except (InvalidTag, ValueError) as exc:
        raise SealError("the sealed value does not open with this key and purpose") from exc


def seal_json(secret_key: str, value: dict, *, purpose: str) -> str:
    return seal(secret_key, json.dumps(value, separators=(",", ":"), sort_keys=True), purpose=purpose)


def unseal_json(secret_key: str, token: str | None, *, purpose: str) -> dict:
    if not token:
        return {}
    return json.loads(unseal(secret_key, token, purpose=purpose))


__all__ = ["SealError", "seal", "seal_json", "unseal", "unseal_json"]
