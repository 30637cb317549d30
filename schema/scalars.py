"""The contract's scalars: BigInt (decimal string), Date, DateTime, Decimal (string).

Every parser raises `InvalidScalar` for input it refuses: `GatewaySchema.process_errors`
answers those as `INVALID_INPUT` (anything else raised while parsing is a bug, masked
as `INTERNAL`).
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import NewType

import strawberry

#: The largest magnitude a BigInt input may have: the ledger's columns are 64-bit
#: (PostgreSQL BIGINT), so anything larger could not be stored or summed.
BIGINT_MAX = 2**63 - 1
_BIGINT_DIGITS = len(str(BIGINT_MAX))


class InvalidScalar(ValueError):
    """A scalar input value the gateway refuses (answered as INVALID_INPUT)."""


_NOT_AN_INTEGER = "BigInt must be an integer or a string of decimal digits"
_TOO_LARGE = f"BigInt must be between -{BIGINT_MAX} and {BIGINT_MAX} (what the ledger holds)"


def _parse_bigint(value) -> int:
    if isinstance(value, bool):
        raise InvalidScalar(_NOT_AN_INTEGER)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        body = text[1:] if text.startswith("-") else text
        if not (body.isdigit() and body.isascii()):
            raise InvalidScalar(_NOT_AN_INTEGER)
        # Leading zeros go and the length is checked before int(): Python refuses to
        # convert more than 4,300 digits at all.
        digits = body.lstrip("0") or "0"
        if len(digits) > _BIGINT_DIGITS:
            raise InvalidScalar(_TOO_LARGE)
        number = -int(digits) if text.startswith("-") else int(digits)
    else:
        raise InvalidScalar(_NOT_AN_INTEGER)
    if not -BIGINT_MAX <= number <= BIGINT_MAX:
        raise InvalidScalar(_TOO_LARGE)
    return number


BigInt = strawberry.scalar(
    NewType("BigInt", int),
    name="BigInt",
    description=(
        "A whole number, exact beyond 2^53. Serialized as a JSON string of decimal digits "
        "with an optional leading minus; input accepts that string or a JSON integer. An "
        "input beyond what the ledger holds (a magnitude above 2^63 - 1, "
        "9223372036854775807) is refused with INVALID_INPUT."
    ),
    serialize=lambda v: str(int(v)),
    parse_value=_parse_bigint,
)


def _parse_decimal(value) -> decimal.Decimal:
    if isinstance(value, (bool, float)) or not isinstance(value, (str, int)):
        raise InvalidScalar('Decimal must be a string such as "0.5" or an integer')
    try:
        result = decimal.Decimal(str(value))
    except (decimal.InvalidOperation, ValueError) as exc:
        raise InvalidScalar('Decimal must be a string such as "0.5"') from exc
    if not result.is_finite():
        raise InvalidScalar("Decimal must be finite")
    return result


Decimal = strawberry.scalar(
    NewType("Decimal", decimal.Decimal),
    name="Decimal",
    description='An exact decimal number serialized as a JSON string, e.g. "0.5".',
    serialize=lambda v: format(decimal.Decimal(v).normalize(), "f"),
    parse_value=_parse_decimal,
)


def _serialize_datetime(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def _parse_datetime(value) -> dt.datetime:
    try:
        result = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidScalar("DateTime must be ISO 8601 with a UTC offset, e.g. 2026-11-25T09:00:00+09:00") from exc
    if result.tzinfo is None:
        raise InvalidScalar("DateTime needs a UTC offset, e.g. 2026-11-25T09:00:00+09:00")
    return result


DateTime = strawberry.scalar(
    NewType("DateTime", dt.datetime),
    name="DateTime",
    description="An instant, ISO 8601 with a UTC offset.",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)


def _parse_date(value) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidScalar("Date must be ISO 8601, YYYY-MM-DD") from exc


Date = strawberry.scalar(
    NewType("Date", dt.date),
    name="Date",
    description="A calendar day in Asia/Seoul, ISO 8601 (YYYY-MM-DD).",
    serialize=lambda v: v.isoformat(),
    parse_value=_parse_date,
)
