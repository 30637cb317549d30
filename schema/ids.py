"""Global ids (defined in gateway/ids.py) and opaque page cursors."""

from __future__ import annotations

import base64
import binascii

from gateway.ids import decode_id, decode_pk, encode_id  # noqa: F401  (re-exported)


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"c1:{position}".encode()).decode().rstrip("=")


def decode_cursor(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        tag, _, pos = raw.partition(":")
        if tag != "c1":
            raise ValueError
        return int(pos)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return -1  # an invalid cursor; paginate() refuses it
