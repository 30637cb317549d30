"""`http-json`: a partner's paginated JSON API (activity, reconciliation reports) and a URL
that takes statements by POST. docs/connectors.md shows a complete configuration.

Pagination: the gateway sends the stored cursor as a query parameter (`cursor_param`) and
reads the list of items (`records`), the next cursor (`next_cursor`) and, if the API has
one, a "more pages" flag (`has_more`) from the answer, each by a dotted path. Without a
flag, it stops at an empty page or one without a next cursor. The cursor stored after the
last page is the last next cursor the API gave (or, when it gave none, the cursor of that
page, which is simply read again next time: re-sent records change nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors import mapping
from connectors.base import (
    ActivityRecord,
    BadRecord,
    ConfigError,
    ConnectorContext,
    Page,
    PermanentError,
    ReconciliationReport,
    StatementDocument,
    TransientError,
)
from connectors.guarded_http import blocked
from connectors.mapping import (
    ACTIVITY_FIELDS,
    DISTANCE_UNITS,
    RECORD_FIELDS,
    REPORT_FIELDS,
    Mapper,
    dig,
    fields_with_defaults,
    parse_date,
    reconciliation_record,
)

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
AUTH_KINDS = ("none", "bearer", "header", "basic")
PAGING_DEFAULTS = {
    "method": "GET",
    "params": {},
    "cursor_param": "cursor",
    "page_size_param": "limit",
    "page_size": 500,
    "records": "data",
    "next_cursor": "next_cursor",
    "has_more": None,
}


def _paging(section: Mapping, what: str, default_path: str) -> dict:
    if not isinstance(section, Mapping):
        raise ConfigError(f"{what} must be an object")
    result = {**PAGING_DEFAULTS, "path": default_path, **section}
    if not isinstance(result["path"], str) or not result["path"].startswith("/"):
        raise ConfigError(f"{what}.path must start with /")
    if result["method"] not in ("GET", "POST"):
        raise ConfigError(f"{what}.method must be GET or POST")
    if not isinstance(result["params"], Mapping):
        raise ConfigError(f"{what}.params must be an object")
    size = result["page_size"]
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 10_000):
        raise ConfigError(f"{what}.page_size must be 1 to 10000")
    return result


class HttpJsonConnector:
    """Pulls activity and reconciliation reports from a JSON API; POSTs statements."""

    def __init__(self, *, config: Mapping, credentials: Mapping, context: ConnectorContext) -> None:
        self.config = self.validate_config(dict(config), frozenset())
        self.credentials = dict(credentials or {})
        self.context = context

    # ------------------------------------------------------------ configuration

    @classmethod
    def outbound_urls(cls, config: Mapping) -> dict[str, str]:
        """The URLs this configuration sends requests to (vetted by the address guard)."""
        return {"base_url": config["base_url"]}

    @classmethod
    def validate_config(cls, config: dict, jobs: frozenset[str]) -> dict:
        base = config.get("base_url")
        try:
            valid = (
                isinstance(base, str) and urlsplit(base).scheme in ("http", "https") and bool(urlsplit(base).hostname)
            )
        except ValueError:  # e.g. an unclosed [ in the host
            valid = False
        if not valid:
            raise ConfigError("base_url must be an http(s) URL, e.g. https://api.partner.example/v1")
        out: dict[str, Any] = {"base_url": base.rstrip("/")}
        timeout = config.get("timeout_seconds", 10)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 300:
            raise ConfigError("timeout_seconds must be between 0 and 300")
        out["timeout_seconds"] = float(timeout)
        auth = config.get("auth", "none")
        if auth not in AUTH_KINDS:
            raise ConfigError(f"auth must be one of {', '.join(AUTH_KINDS)}")
        out["auth"] = auth
        headers = config.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ConfigError("headers must be an object of strings")
        out["headers"] = dict(headers)
        for key in ("retry", "breaker"):
            if key in config:
                out[key] = config[key]
        if "activity" in config or "PULL_ACTIVITY" in jobs:
            section = _paging(config.get("activity", {}), "activity", "/activity")
            section["fields"] = fields_with_defaults(section.get("fields"), ACTIVITY_FIELDS, what="activity.fields")
            section.setdefault("defaults", {})
            unit = section.setdefault("distance_unit", "m")
            if unit not in DISTANCE_UNITS:
                raise ConfigError(f"activity.distance_unit must be one of {', '.join(DISTANCE_UNITS)}")
            out["activity"] = section
        if "reconciliation" in config or "PULL_RECONCILIATION" in jobs:
            section = _paging(config.get("reconciliation", {}), "reconciliation", "/reconciliation-reports")
            section["fields"] = fields_with_defaults(section.get("fields"), REPORT_FIELDS, what="reconciliation.fields")
            section["record_fields"] = fields_with_defaults(
                section.get("record_fields"), RECORD_FIELDS, what="reconciliation.record_fields"
            )
            section.setdefault("defaults", {})
            section.setdefault("kind_values", {})
            out["reconciliation"] = section
        if "statements" in config or "PUSH_STATEMENT" in jobs:
            section = {"path": "/statements", "method": "POST", "format": "json", **dict(config.get("statements", {}))}
            if not str(section["path"]).startswith("/"):
                raise ConfigError("statements.path must start with /")
            if section["method"] not in ("POST", "PUT"):
                raise ConfigError("statements.method must be POST or PUT")
            if section["format"] not in ("json", "csv"):
                raise ConfigError("statements.format must be json or csv")
            out["statements"] = section
        return out

    # ------------------------------------------------------------ HTTP

    def _auth_headers(self) -> dict[str, str]:
        auth = self.config["auth"]
        if auth == "bearer":
            return {"Authorization": f"Bearer {self._credential('token')}"}
        if auth == "header":
            return {self._credential("header"): self._credential("value")}
        return {}

    def _credential(self, name: str) -> str:
        value = self.credentials.get(name)
        if not value:
            raise PermanentError(f"credentials lack {name!r} (auth {self.config['auth']})")
        return str(value)

    async def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        url = self.config["base_url"] + path
        headers = {
            "Accept": "application/json",
            **self.config["headers"],
            **self._auth_headers(),
            **kwargs.pop("headers", {}),
        }
        auth = (self._credential("username"), self._credential("password")) if self.config["auth"] == "basic" else None
        try:
            response = await self.context.http.request(
                method, url, headers=headers, auth=auth, timeout=self.config["timeout_seconds"], **kwargs
            )
        except httpx.TransportError as exc:
            refused = blocked(exc)
            if refused is not None:
                raise PermanentError(f"{method} {url}: {refused}; connectors reach public addresses only") from None
            # One message for a refused connection, a timeout and a broken answer alike: a
            # run's error must not tell whether a port is open. The detail goes to the log.
            self.context.log.info("%s %s: %s: %s", method, url, type(exc).__name__, exc)
            raise TransientError(
                f"{method} {url}: connection failed or no answer within {self.config['timeout_seconds']:g} s"
            ) from None
        if response.status_code in TRANSIENT_STATUS:
            raise TransientError(f"{method} {url}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentError(f"{method} {url}: HTTP {response.status_code}")
        return response

    async def _page(self, section: Mapping, cursor: str | None) -> tuple[list, str | None, bool]:
        params = {k: str(v) for k, v in section["params"].items()}
        if cursor is not None:
            params[section["cursor_param"]] = cursor
        if section.get("page_size_param") and section.get("page_size"):
            params[section["page_size_param"]] = str(section["page_size"])
        if section["method"] == "GET":
            response = await self._request("GET", section["path"], params=params)
        else:
            response = await self._request("POST", section["path"], json=params)
        try:
            body = response.json()
        except ValueError:
            raise PermanentError(f"{section['path']}: the answer is not JSON") from None
        items = dig(body, section["records"], None)
        if not isinstance(items, list):
            raise BadRecord(f"{section['path']}: no list at {section['records']!r} in the answer")
        next_cursor = dig(body, section["next_cursor"], None) if section.get("next_cursor") else None
        next_cursor = None if next_cursor in (None, "") else str(next_cursor)
        if section.get("has_more"):
            has_more = bool(dig(body, section["has_more"], False))
        else:
            has_more = bool(items) and next_cursor is not None
        if next_cursor == cursor:
            has_more = False
        return items, next_cursor if next_cursor is not None else cursor, has_more

    # ------------------------------------------------------------ the protocols

    async def fetch_activity(self, cursor: str | None) -> Page[ActivityRecord]:
        section = self._section("activity")
        items, next_cursor, has_more = await self._page(section, cursor)
        mapper = Mapper(section["fields"], section["defaults"])
        records = [
            mapping.activity(
                item,
                mapper,
                f"activity item {i + 1}",
                distance_unit=section["distance_unit"],
                source=section.get("source"),
            )
            for i, item in enumerate(items)
        ]
        return Page(records=records, cursor=next_cursor, has_more=has_more)

    async def fetch_reconciliation(self, cursor: str | None) -> Page[ReconciliationReport]:
        section = self._section("reconciliation")
        items, next_cursor, has_more = await self._page(section, cursor)
        report_mapper = Mapper(section["fields"], section["defaults"])
        record_mapper = Mapper(section["record_fields"])
        reports = []
        for i, item in enumerate(items):
            where = f"report {i + 1}"
            raw_records = report_mapper.value(item, "records", where)
            if not isinstance(raw_records, list):
                raise BadRecord(f"{where}: records must be a list")
            reports.append(
                ReconciliationReport(
                    agreement_code=str(report_mapper.value(item, "agreement_code", where)),
                    period_start=parse_date(report_mapper.value(item, "period_start", where), "period_start", where),
                    period_end=parse_date(report_mapper.value(item, "period_end", where), "period_end", where),
                    records=[
                        reconciliation_record(
                            r, record_mapper, f"{where}, record {j + 1}", kind_values=section["kind_values"]
                        )
                        for j, r in enumerate(raw_records)
                    ],
                    name=str(report_mapper.value(item, "name", where) or "") or None,
                )
            )
        return Page(records=reports, cursor=next_cursor, has_more=has_more)

    async def push_statement(self, statement: StatementDocument) -> None:
        section = self._section("statements")
        csv_format = section["format"] == "csv"
        await self._request(
            section["method"],
            section["path"],
            content=statement.csv if csv_format else statement.document,
            headers={
                "Content-Type": "text/csv; charset=utf-8" if csv_format else "application/json",
                "Idempotency-Key": statement.id,
                "X-Statement-Digest": statement.digest,
                "X-Statement-Signature": statement.signature,
            },
        )

    def _section(self, name: str) -> Mapping:
        section = self.config.get(name)
        if section is None:
            raise PermanentError(f"the connector's config has no {name!r} section")
        return section


__all__ = ["HttpJsonConnector"]
