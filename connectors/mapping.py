"""Field mappings: a partner's names for things, turned into the gateway's records.

A mapping names, for each of our fields, where the partner keeps it: a key, a dotted path
into nested JSON ("walk.totals.meters", "items.0.id") or a CSV column. `defaults` gives a
fixed value for a field the partner does not send. The default mapping is the contract's
own names (memberExternalId, date, steps, distanceMeters, ...), so a partner that already
speaks the contract's JSON needs no mapping at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import ActivityRecord, BadRecord, ConfigError, ReconciliationRecord

ACTIVITY_FIELDS = {
    "member_external_id": "memberExternalId",
    "date": "date",
    "steps": "steps",
    "distance_meters": "distanceMeters",
    "source": "source",
}
RECORD_FIELDS = {"reference": "reference", "kind": "kind", "amount_won": "amountWon", "occurred_at": "occurredAt"}
REPORT_FIELDS = {
    "agreement_code": "agreementCode",
    "period_start": "periodStart",
    "period_end": "periodEnd",
    "records": "records",
    "name": "id",
}
OPTIONAL = {"source", "name"}
DISTANCE_UNITS = {"m": Decimal(1), "km": Decimal(1000), "mi": Decimal("1609.344")}
_MISSING = object()


def dig(obj: Any, path: str | None, default: Any = _MISSING) -> Any:
    """The value at a dotted path ("" or None: the object itself)."""
    if not path:
        return obj
    current = obj
    for part in str(path).split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            if default is _MISSING:
                raise KeyError(path)
            return default
    return current


def fields_with_defaults(given: Mapping | None, base: Mapping[str, str], *, what: str) -> dict[str, str]:
    """A mapping config, checked: only our field names, string paths."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(base))
    if unknown:
        raise ConfigError(f"{what}: unknown fields {', '.join(unknown)} (known: {', '.join(base)})")
    for key, value in given.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{what}.{key} must be a non-empty string")
    return {**base, **given}


class Mapper:
    def __init__(self, fields: Mapping[str, str], defaults: Mapping[str, Any] | None = None) -> None:
        self.fields = dict(fields)
        self.defaults = dict(defaults or {})

    def value(self, raw: Any, name: str, where: str) -> Any:
        value = dig(raw, self.fields.get(name), None) if self.fields.get(name) else None
        if value in (None, "") and name in self.defaults:
            value = self.defaults[name]
        if value in (None, "") and name not in OPTIONAL:
            raise BadRecord(f"{where}: no {name} (looked for {self.fields.get(name)!r})")
        return value


def parse_int(value: Any, name: str, where: str, *, scale: Decimal = Decimal(1)) -> int:
    if isinstance(value, bool):
        raise BadRecord(f"{where}: {name} must be a number")
    try:
        number = Decimal(str(value).strip().replace(",", "")) * scale
    except InvalidOperation:
        raise BadRecord(f"{where}: {name} must be a number, not {value!r}") from None
    if scale == 1 and number != number.to_integral_value():
        raise BadRecord(f"{where}: {name} must be a whole number, not {value!r}")
    return int(number.to_integral_value())


def parse_date(value: Any, name: str, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise BadRecord(f"{where}: {name} must be a date (YYYY-MM-DD), not {value!r}") from None


def parse_instant(value: Any, name: str, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        result = value
    else:
        try:
            result = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadRecord(f"{where}: {name} must be an ISO 8601 instant, not {value!r}") from None
    if result.tzinfo is None:
        raise BadRecord(f"{where}: {name} needs a UTC offset, e.g. 2026-11-25T09:00:00+09:00")
    return result


def activity(
    raw: Any, mapper: Mapper, where: str, *, distance_unit: str = "m", source: str | None = None
) -> ActivityRecord:
    member = mapper.value(raw, "member_external_id", where)
    return ActivityRecord(
        member_external_id=str(member).strip(),
        date=parse_date(mapper.value(raw, "date", where), "date", where),
        steps=parse_int(mapper.value(raw, "steps", where), "steps", where),
        distance_meters=parse_int(
            mapper.value(raw, "distance_meters", where), "distance_meters", where, scale=DISTANCE_UNITS[distance_unit]
        ),
        source=(str(mapper.value(raw, "source", where) or "") or source or None),
    )


def reconciliation_record(
    raw: Any, mapper: Mapper, where: str, *, kind_values: Mapping[str, str] | None = None
) -> ReconciliationRecord:
    kind = str(mapper.value(raw, "kind", where)).strip()
    kind = (kind_values or {}).get(kind, kind)
    return ReconciliationRecord(
        reference=str(mapper.value(raw, "reference", where)).strip(),
        kind=kind,
        amount_won=parse_int(mapper.value(raw, "amount_won", where), "amount_won", where),
        occurred_at=parse_instant(mapper.value(raw, "occurred_at", where), "occurred_at", where),
    )


__all__ = [
    "ACTIVITY_FIELDS",
    "DISTANCE_UNITS",
    "Mapper",
    "RECORD_FIELDS",
    "REPORT_FIELDS",
    "activity",
    "dig",
    "fields_with_defaults",
    "parse_date",
    "parse_instant",
    "parse_int",
    "reconciliation_record",
]
