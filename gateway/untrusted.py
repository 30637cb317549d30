"""Decoding what a client sends, so that bad input is refused as input and never fails later.

- `storable`: PostgreSQL refuses a NUL in text, and a string holding an unpaired UTF-16
  surrogate (JSON's `"\\ud800"`) cannot be encoded as UTF-8 at all; both would fail deep
  inside a service as a driver error (a 500 carrying SQL text) instead of a 4xx.
- `loads`: `json.loads` raises RecursionError on deeply nested input (`[[[[...` 50,000
  deep fits in a small body) and ValueError on an integer of more than 4,300 digits.
- `whole_number`: `int()` of a string of digits, refused beyond `max_digits` before
  Python converts it (a 5,000-digit amount is a ValueError Python raises itself).

The REST faces and the report parsers use these; the GraphQL face has its own walk over
an operation's strings (schema/input_text.py).
"""

from __future__ import annotations

import json
from typing import Any

#: The ledger's columns are 64-bit (PostgreSQL BIGINT).
BIGINT_MAX = 2**63 - 1
UNSTORABLE = "contains a NUL character or an unpaired surrogate, which cannot be stored"


class UntrustedInput(ValueError):
    """Input refused while decoding; the message says why, without echoing the input."""


def storable(text: str) -> bool:
    """Whether PostgreSQL (UTF-8, no NUL) can hold `text`."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_path(value: Any, root: str = "") -> str | None:
    """The path (`reason`, `lines[2].name`) of the first string in a decoded JSON value,
    keys included, that the database cannot hold; None if there is none. Iterative, so any
    nesting depth is fine."""
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not storable(item):
                return path or "(body)"
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not storable(key):
                    return path or "(body)"
                stack.append((f"{path}.{key}" if path else key, inner))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", inner) for i, inner in enumerate(item))
    return None


def loads(data: str | bytes) -> Any:
    """`json.loads`, with every way it can fail on hostile input turned into UntrustedInput."""
    try:
        return json.loads(data)
    except RecursionError:
        raise UntrustedInput("The JSON is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and integers too long to convert
        raise UntrustedInput(
            "The body is not valid JSON."
            if isinstance(exc, json.JSONDecodeError)
            else "The JSON could not be decoded (bad UTF-8 or a number too long)."
        ) from None


def whole_number(text: str, *, max_digits: int = len(str(BIGINT_MAX))) -> int | None:
    """The integer written as ASCII digits in `text` (surrounding spaces allowed), or None
    when it is not one or has more than `max_digits` significant digits."""
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    if len(text.lstrip("0")) > max_digits:
        return None
    return int(text)


def nested_too_deep(data: bytes, *, threshold: int = 500) -> bool:
    """Whether a JSON body nests deeper than `json.loads` can follow (the interpreter's
    recursion limit): cheap for ordinary bodies (two C counts), one parse only for bodies
    with more than `threshold` brackets at all."""
    if data.count(b"[") + data.count(b"{") <= threshold:
        return False
    try:
        json.loads(data)
    except RecursionError:
        return True
    except ValueError:
        return False  # malformed in another way: the caller's parser answers that
    return False


__all__ = [
    "BIGINT_MAX",
    "UNSTORABLE",
    "UntrustedInput",
    "loads",
    "nested_too_deep",
    "storable",
    "unstorable_path",
    "whole_number",
]
