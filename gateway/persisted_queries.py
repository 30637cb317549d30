"""Automatic persisted queries (the Apollo convention): a query text stored under its
SHA-256 the first time a client sends both, run later from the hash alone.

Each partner has a store of its own: a hash one partner stored is unknown to every other
(so the store reveals nothing across tenants, and no tenant can fill another's). A store
holds at most `limit` queries; storing one more evicts the least recently used.

Stored in the database, so every worker process and every restart knows them; a small
per-process cache spares the look-up for hot hashes. Last use is recorded when a query
is looked up in the database (`use`), which the caller does at most once per interval
for a cached query, so eviction order is exact to that interval.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import utcnow
from gateway.errors import NotFound
from gateway.models import OAuthClient, PersistedQuery

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def digest(query: str) -> str:
    """SHA-256 of the query's UTF-8; raises UnicodeEncodeError for text that is not Unicode."""
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


class Cached(NamedTuple):
    query: str
    #: `time.monotonic()` when its last use was recorded in the database.
    recorded: float


class QueryCache:
    """A bounded LRU of (partner id, hash) -> query text and when its use was last recorded."""

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[int, str], Cached] = OrderedDict()

    def get(self, partner_id: int, sha256: str) -> Cached | None:
        item = self._items.get((partner_id, sha256))
        if item is not None:
            self._items.move_to_end((partner_id, sha256))
        return item

    def put(self, partner_id: int, sha256: str, query: str, recorded: float) -> None:
        self._items[(partner_id, sha256)] = Cached(query, recorded)
        self._items.move_to_end((partner_id, sha256))
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def discard(self, partner_id: int, sha256: str) -> None:
        self._items.pop((partner_id, sha256), None)


def _key(partner_id: int, sha256: str):
    return (PersistedQuery.partner_id == partner_id) & (PersistedQuery.sha256 == sha256)


async def lookup(*, session: AsyncSession, partner_id: int, sha256: str) -> str | None:
    """The partner's query stored under `sha256`, or None."""
    return (await session.execute(sa.select(PersistedQuery.query).where(_key(partner_id, sha256)))).scalar_one_or_none()


async def use(*, session: AsyncSession, partner_id: int, sha256: str) -> str | None:
    """Like `lookup`, and records the use (the query becomes the most recently used)."""
    return (
        await session.execute(
            sa.update(PersistedQuery)
            .where(_key(partner_id, sha256))
            .values(last_used_at=utcnow())
            .returning(PersistedQuery.query)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()


async def store(
    *, session: AsyncSession, partner_id: int, sha256: str, query: str, client_id: str, limit: int
) -> list[str]:
    """Keep `query` under `sha256` (which the caller checked) for the partner; a second
    store is a no-op. Returns the hashes evicted to keep at most `limit` queries."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    await session.execute(
        insert(PersistedQuery)
        .values(
            partner_id=partner_id,
            sha256=sha256,
            query=query,
            created_by=client_id[:64],
            created_at=now,
            last_used_at=now,
        )
        .on_conflict_do_nothing(index_elements=["partner_id", "sha256"])
    )
    count = (
        await session.execute(sa.select(sa.func.count()).where(PersistedQuery.partner_id == partner_id))
    ).scalar_one()
    if count <= limit:
        return []
    victims = list(
        (
            await session.execute(
                sa.select(PersistedQuery.sha256)
                .where(PersistedQuery.partner_id == partner_id, PersistedQuery.sha256 != sha256)
                .order_by(PersistedQuery.last_used_at, PersistedQuery.created_at, PersistedQuery.sha256)
                .limit(count - limit)
            )
        ).scalars()
    )
    await session.execute(
        sa.delete(PersistedQuery)
        .where(PersistedQuery.partner_id == partner_id, PersistedQuery.sha256.in_(victims))
        .execution_options(synchronize_session=False)
    )
    return victims


async def persisted_only(*, session: AsyncSession, client_id: str) -> bool:
    """Whether the client is registered to run only persisted queries."""
    flag = (
        await session.execute(sa.select(OAuthClient.persisted_queries_only).where(OAuthClient.client_id == client_id))
    ).scalar_one_or_none()
    return bool(flag)


async def set_persisted_only(*, session: AsyncSession, client_id: str, enabled: bool) -> OAuthClient:
    """Register the client to run only persisted queries (or lift that); from its next request on."""
    client = (
        await session.execute(sa.select(OAuthClient).where(OAuthClient.client_id == client_id))
    ).scalar_one_or_none()
    if client is None:
        raise NotFound(f"no client {client_id!r}", field=["input", "clientId"])
    client.persisted_queries_only = bool(enabled)
    await session.flush()
    return client
