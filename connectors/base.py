"""The connector SDK: what a connector type implements, and what it is given.

A connector type is a class registered under the entry point group
`mileage_gateway.connectors` (see connectors/registry.py and docs/connectors.md). The gateway
makes one instance per run:

    instance = ConnectorClass(config=..., credentials=..., context=ConnectorContext(...))

and calls the methods of the Protocols below that the class implements. Which jobs a type
serves follows from its methods: `fetch_activity` -> PULL_ACTIVITY, `fetch_reconciliation` ->
PULL_RECONCILIATION, `push_statement` -> PUSH_STATEMENT. A class may also define

    @classmethod
    def validate_config(cls, config: dict, jobs: frozenset[str]) -> dict

to check (and normalise) an administrator's configuration before it is stored; raise
`ConfigError` with a message saying what is wrong. A type that sends requests to URLs of
its configuration also defines

    @classmethod
    def outbound_urls(cls, config: dict) -> dict[str, str]   # config key -> URL

so that `configureConnector` refuses loopback, private, link-local and metadata addresses
(gateway/addresses.py). Whatever the type does, its requests through `context.http`
connect only to addresses the guard accepts, checked when each connection is opened.

Pulls are page by page. `fetch_*(cursor)` returns one `Page`: its records and the cursor to
store once they are applied; the runner applies the page and stores the cursor in one
database transaction, then asks for the next page while `has_more`. The first pull gets
`cursor=None`. Re-reading a page is harmless (a resent activity is UNCHANGED), so a source
whose API has no "changes since" position may return the last page's own cursor.

Errors: raise `TransientError` for what may pass (timeouts, 5xx, 429, a connection refused):
the runner retries it with backoff and jitter and, if it persists, counts it against the
connector's health. `PermanentError` (401, 404, a wrong configuration) is not retried but
counts too. `BadRecord` (the partner's data is malformed) fails the run without touching the
connector's health. Anything else is a bug in the connector: the run fails.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

import httpx

from gateway.activity import ActivityIn

T = TypeVar("T")


# ---------------------------------------------------------------- records


#: A member's walking total for one day (Asia/Seoul), as `recordActivities` takes it: the
#: domain's own record type, so a connector's records go to the same service unchanged.
ActivityRecord = ActivityIn


@dataclass(frozen=True)
class ReconciliationRecord:
    """One movement as the partner recorded it (`submitReconciliationReport`'s record)."""

    reference: str
    #: A FlowKind value: CROSS_REDEMPTION, CROSS_REFUND or EXCHANGE.
    kind: str
    amount_won: int
    occurred_at: dt.datetime


@dataclass(frozen=True)
class ReconciliationReport:
    """A partner's records of one agreement and period. `records` may be a lazy async
    iterable (a large file is streamed into the gateway's staging, never held in memory)."""

    agreement_code: str
    period_start: dt.date
    period_end: dt.date
    records: Iterable[ReconciliationRecord] | AsyncIterable[ReconciliationRecord]
    #: What the report is called at the partner (a file name, a report id), for messages.
    name: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a pull: the records, and the cursor to store once they are applied."""

    records: list[T]
    cursor: str | None
    has_more: bool = False


@dataclass(frozen=True)
class StatementDocument:
    """A sponsor's issued donation statement, as pushed to its finance system."""

    #: Stable across pushes (use it as an idempotency key).
    id: str
    sponsor_code: str
    period_start: dt.date
    period_end: dt.date
    #: The canonical JSON (RFC 8785) bytes; `digest` is their hex SHA-256, `signature` a
    #: detached compact JWS over them (verify with the gateway's JWKS).
    document: bytes
    digest: str
    signature: str
    #: The same statement as CSV (one header row, one row per line).
    csv: bytes
    total_won: int


# ---------------------------------------------------------------- what a connector is given


@dataclass
class ConnectorContext:
    partner_code: str
    kind: str
    #: An HTTP client for this run (timeouts set from the connector's `timeout_seconds`;
    #: environment proxies ignored; every connection through the address guard, to the
    #: address it checked). The runner closes it after the run.
    http: httpx.AsyncClient
    timeout_seconds: float = 10.0
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("connectors"))


# ---------------------------------------------------------------- the protocols


@runtime_checkable
class ActivitySource(Protocol):
    async def fetch_activity(self, cursor: str | None) -> Page[ActivityRecord]: ...


@runtime_checkable
class ReconciliationSource(Protocol):
    async def fetch_reconciliation(self, cursor: str | None) -> Page[ReconciliationReport]: ...


@runtime_checkable
class StatementSink(Protocol):
    async def push_statement(self, statement: StatementDocument) -> None: ...


class ConnectorType(Protocol):
    """What the entry point names: a class made with keyword arguments."""

    def __call__(self, *, config: Mapping, credentials: Mapping, context: ConnectorContext) -> object: ...


#: Job name (ConnectorJob value) served by each protocol.
JOB_PROTOCOLS: dict[str, type] = {
    "PULL_ACTIVITY": ActivitySource,
    "PULL_RECONCILIATION": ReconciliationSource,
    "PUSH_STATEMENT": StatementSink,
}


# ---------------------------------------------------------------- errors


class ConnectorError(Exception):
    """A run could not finish. `upstream`: the partner's system is at fault (counts against
    the connector's health); `transient`: worth retrying now."""

    transient = False
    upstream = True


class TransientError(ConnectorError):
    transient = True


class PermanentError(ConnectorError):
    pass


class BadRecord(ConnectorError):
    upstream = False


class ConfigError(ValueError):
    """A connector's configuration is not acceptable (raised by `validate_config`)."""


__all__ = [
    "ActivityRecord",
    "ActivitySource",
    "BadRecord",
    "ConfigError",
    "ConnectorContext",
    "ConnectorError",
    "ConnectorType",
    "JOB_PROTOCOLS",
    "Page",
    "PermanentError",
    "ReconciliationRecord",
    "ReconciliationReport",
    "ReconciliationSource",
    "StatementDocument",
    "StatementSink",
    "TransientError",
]
