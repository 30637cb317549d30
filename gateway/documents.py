"""Signed documents (donation statements, settlements): canonical JSON, digest, signature, URLs.

- The canonical form is RFC 8785 (JSON Canonicalization Scheme) through `rfc8785`;
  amounts go in as strings, so no number formatting question arises.
- `digest` is the lowercase hex SHA-256 of those bytes.
- The signature is a detached compact JWS (RFC 7515 Appendix F) made by the key store
  (`signer.sign_detached(payload) -> "header..signature"`, EdDSA with a `kid` from the JWKS).
- Document URLs are absolute, expire (settings.document_url_ttl_seconds) and carry an
  HMAC-SHA256 over path and expiry keyed from the gateway's secret; a changed or expired
  URL is refused (403).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import rfc8785


class DetachedSigner(Protocol):
    async def sign_detached(self, payload: bytes) -> str: ...


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of a document whose amounts are already strings."""
    return rfc8785.dumps(document)


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class SignedDocument:
    document: dict[str, Any]
    payload: bytes
    digest: str
    signature: str


async def sign(document: dict[str, Any], signer: DetachedSigner) -> SignedDocument:
    payload = canonical_bytes(document)
    return SignedDocument(
        document=document, payload=payload, digest=digest(payload), signature=await signer.sign_detached(payload)
    )


def won(amount: int) -> str:
    """Amounts in canonical documents are strings of whole won."""
    return str(int(amount))


# ---------------------------------------------------------------- signed URLs


#: An expiry is a Unix time in seconds; 12 digits reach the year 33658.
EXPIRES_DIGITS = 12


def _url_key(secret_key: str) -> bytes:
    return hashlib.sha256(b"mileage-gateway/document-urls\x00" + secret_key.encode()).digest()


def _mac(secret_key: str, path: str, expires: int) -> str:
    mac = hmac.new(_url_key(secret_key), f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def signed_url(*, base_url: str, path: str, secret_key: str, ttl_seconds: int, now: float | None = None) -> str:
    """Absolute URL of `path` (which may carry its own query) valid for `ttl_seconds`."""
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    separator = "&" if "?" in path else "?"
    query = urlencode({"expires": expires, "sig": _mac(secret_key, path, expires)})
    return f"{base_url.rstrip('/')}{path}{separator}{query}"


def verify_url(
    *, path_with_query: str, expires: str | None, sig: str | None, secret_key: str, now: float | None = None
) -> bool:
    """True when `sig` signs `path_with_query` (the URL's path and its other query
    parameters, as signed) and the URL has not expired."""
    # Anyone may send these: ASCII digits of a sane length only (int() refuses over 4,300
    # digits with a ValueError, and "²" is a digit to isdigit()), and bytes compared, as
    # compare_digest refuses non-ASCII text with a TypeError.
    if not expires or not sig or not (expires.isascii() and expires.isdigit()) or len(expires) > EXPIRES_DIGITS:
        return False
    if int(expires) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(
        _mac(secret_key, path_with_query, int(expires)).encode(), sig.encode("utf-8", "surrogatepass")
    )


def strip_signature(path: str, query_params: dict[str, str]) -> tuple[str, str | None, str | None]:
    """Split a request into (the signed path with its other parameters in order, expires, sig)."""
    others = [(k, v) for k, v in query_params.items() if k not in ("expires", "sig")]
    signed = path + ("?" + urlencode(others) if others else "")
    return signed, query_params.get("expires"), query_params.get("sig")


def iso(value: dt.date | dt.datetime) -> str:
    return value.isoformat()
