"""The ids partners see: "Redemption:42" in URL-safe base64, opaque to them.

Domain events quote them (a settlement's id in `settlement.closed`), and the GraphQL layer
uses them for every `Node`, so the encoding lives here, once.
"""

from __future__ import annotations

import base64
import binascii


def encode_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def decode_id(value: str, type_name: str | None = None) -> tuple[str, int] | None:
    """(type, pk) of a global id, or None when it is malformed or of another type."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        kind, _, pk = raw.partition(":")
        number = int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if type_name is not None and kind != type_name:
        return None
    return kind, number


def decode_pk(value: str, type_name: str) -> int | None:
    decoded = decode_id(value, type_name)
    return decoded[1] if decoded else None
