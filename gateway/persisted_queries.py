"""Automatic persisted queries (the Apollo convention): a query text stored under its
SHA-256 the first time a client sends both, run later from the hash alone.

Stored in the database, so every worker process and every restart knows them; a small
per-process cache spares the look-up for hot hashes.
"""
from __future__ import annotations

import hashlib
import re
from collections import OrderedDict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import OAuthClient, PersistedQuery

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def digest(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


class QueryCache:
    """A bounded LRU of hash -> query text (known queries never change)."""

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, str] = OrderedDict()

    def get(self, sha256: str) -> str | None:
        query = self._items.get(sha256)
        if query is not None:
            self._items.move_to_end(sha256)
        return query

    def put(self, sha256: str, query: str) -> None:
        self._items[sha256] = query
        self._items.move_to_end(sha256)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)


async def lookup(*, session: AsyncSession, sha256: str) -> str | None:
    return (
        await session.execute(sa.select(PersistedQuery.query).where(PersistedQuery.sha256 == sha256))
    ).scalar_one_or_none()


async def store(*, session: AsyncSession, sha256: str, query: str, client_id: str) -> None:
    """Keep `query` under `sha256` (which the caller checked); a second store is a no-op."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    await session.execute(
        insert(PersistedQuery)
        .values(sha256=sha256, query=query, created_by=client_id[:64])
        .on_conflict_do_nothing(index_elements=["sha256"])
    )


async def persisted_only(*, session: AsyncSession, client_id: str) -> bool:
    """Whether the client is registered to run only persisted queries."""
    flag = (
        await session.execute(sa.select(OAuthClient.persisted_queries_only).where(OAuthClient.client_id == client_id))
    ).scalar_one_or_none()
    return bool(flag)
