"""`mileage-gateway verify-document FILE --jwks URL_OR_FILE --signature SIG`

Checks a signed document (a donation statement or a settlement: its canonical JSON bytes,
exactly as downloaded) against a detached compact JWS (RFC 7515 Appendix F,
`header..signature`, EdDSA) and the gateway's public keys. It needs nothing from the gateway
but the JWKS, which may be a saved file, so an auditor can check a statement offline.

Exit 0 and print the document's SHA-256 digest when the signature is valid; exit 1 with a
message saying what is wrong otherwise (2 for unusable arguments).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet

#: The contract names "EdDSA" (Ed25519); RFC 9864 prefers "Ed25519", joserfc warns about the old name.
ALG = "EdDSA"


class VerificationError(Exception):
    """The document does not verify; the message says why."""


@dataclass(frozen=True)
class Verified:
    digest: str
    kid: str


def verify_document(payload: bytes, signature: str, jwks: dict) -> Verified:
    """Check `signature` (detached compact JWS) over `payload` with a key of `jwks`."""
    signature = signature.strip()
    parts = signature.split(".")
    if len(parts) != 3 or parts[1] != "":
        raise VerificationError("the signature is not a detached compact JWS (header..signature)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            header = jws.extract_compact(signature.encode(), payload=payload).headers()
    except (JoseError, ValueError) as exc:
        raise VerificationError(f"the signature's header cannot be read: {exc}") from None
    if header.get("alg") != ALG:
        raise VerificationError(f"the signature uses alg {header.get('alg')!r}, not {ALG}")
    kid = header.get("kid")
    if not kid:
        raise VerificationError("the signature names no key (kid)")
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid]
    if not keys:
        raise VerificationError(f"the JWKS has no key with kid {kid!r}")
    try:
        key_set = KeySet.import_key_set({"keys": keys})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            jws.deserialize_compact(signature, key_set, algorithms=[ALG], payload=payload)
    except JoseError as exc:
        raise VerificationError(
            f"the signature does not match the document ({exc.error if hasattr(exc, 'error') else type(exc).__name__}): "
            "the file is not byte for byte the document that was signed"
        ) from None
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"the key {kid!r} cannot be used: {exc}") from None
    return Verified(digest=hashlib.sha256(payload).hexdigest(), kid=kid)


def load_jwks(source: str, *, timeout: float = 10.0) -> dict:
    """A JWKS from an http(s) URL or a file."""
    if source.startswith(("http://", "https://")):
        import httpx

        response = httpx.get(source, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
        data = response.json()
    else:
        data = json.loads(Path(source).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWKS: expected an object with a list of keys")
    return data


def _signature_arg(value: str) -> str:
    """The signature itself, or a file that holds it."""
    if value.count(".") != 2:
        path = Path(value)
        if path.is_file():
            return path.read_text().strip()
    return value.strip()


def cmd_verify_document(args: argparse.Namespace) -> int:
    try:
        payload = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"verify-document: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        jwks = load_jwks(args.jwks)
    except Exception as exc:  # noqa: BLE001 - any failure to get the keys is reported as such
        print(f"verify-document: cannot load the JWKS from {args.jwks}: {exc}", file=sys.stderr)
        return 2
    try:
        result = verify_document(payload, _signature_arg(args.signature), jwks)
    except VerificationError as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    if args.digest and args.digest.lower() != result.digest:
        print(f"INVALID: the signature is valid but the digest is {result.digest}, not {args.digest}", file=sys.stderr)
        return 1
    print(result.digest)
    print(
        f"valid: EdDSA signature by key {result.kid} over {len(payload)} bytes, sha256 {result.digest}", file=sys.stderr
    )
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify-document",
        help="check a signed statement or settlement offline with the gateway's JWKS",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="the document's canonical JSON, exactly as downloaded")
    parser.add_argument(
        "--jwks", required=True, metavar="URL_OR_FILE", help="the gateway's /.well-known/jwks.json, or a saved copy"
    )
    parser.add_argument(
        "--signature", required=True, metavar="SIG", help="the detached JWS (header..signature), or a file holding it"
    )
    parser.add_argument(
        "--digest", help="also require this SHA-256 hex digest (as the GraphQL `digest` field gives it)"
    )
    parser.set_defaults(func=cmd_verify_document)


__all__ = ["VerificationError", "Verified", "cmd_verify_document", "load_jwks", "register_cli", "verify_document"]
