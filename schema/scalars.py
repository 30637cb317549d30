"""The contract's scalars: BigInt (decimal string), Date, DateTime, Decimal (string)."""
from __future__ import annotations

import datetime as dt
import decimal
from typing import NewType

import strawberry


def _parse_bigint(value) -> int:
    if isinstance(value, bool):
        raise ValueError("BigInt must be an integer or a string of decimal digits")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        body = text[1:] if text.startswith("-") else text
        if body.isdigit() and body.isascii():
            return int(text)
    raise ValueError("BigInt must be an integer or a string of decimal digits")


BigInt = strawberry.scalar(
    NewType("BigInt", int),
    name="BigInt",
    description=(
        "A whole number of any size. Serialized as a JSON string of decimal digits with an "
        "optional leading minus; input accepts that string or a JSON integer."
    ),
    serialize=lambda v: str(int(v)),
    parse_value=_parse_bigint,
)


def _parse_decimal(value) -> decimal.Decimal:
    if isinstance(value, (bool, float)):
        raise ValueError("Decimal must be a string such as \"0.5\" or an integer")
    try:
        result = decimal.Decimal(str(value))
    except decimal.InvalidOperation as exc:
        raise ValueError("Decimal must be a string such as \"0.5\"") from exc
    if not result.is_finite():
        raise ValueError("Decimal must be finite")
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
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat()


def _parse_datetime(value) -> dt.datetime:
    result = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if result.tzinfo is None:
        raise ValueError("DateTime needs a UTC offset, e.g. 2026-11-25T09:00:00+09:00")
    return result


DateTime = strawberry.scalar(
    NewType("DateTime", dt.datetime),
    name="DateTime",
    description="An instant, ISO 8601 with a UTC offset.",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)

Date = strawberry.scalar(
    NewType("Date", dt.date),
    name="Date",
    description="A calendar day in Asia/Seoul, ISO 8601 (YYYY-MM-DD).",
    serialize=lambda v: v.isoformat(),
    parse_value=lambda v: dt.date.fromisoformat(str(v)),
)
