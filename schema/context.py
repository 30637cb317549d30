"""Per-request context handed to every resolver."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth.principal import Principal
from gateway.db import Database
from gateway.settings import Settings
from schema.dataloaders import Loaders


@dataclass
class Context:
    request: Any
    response: Any
    db: Database
    settings: Settings
    principal: Principal | None
    #: Application-wide services (key store, document signer, ...), see gateway.app.AppState.
    state: Any
    #: (operation, outcome) of each mutation field, written to the audit log after the request.
    audit: list[tuple[str, str]] = field(default_factory=list)
    _session: ReadSession | None = None
    _loaders: Loaders | None = None

    @property
    def session(self) -> ReadSession:
        """The request's read session, opened on first use and closed after the response."""
        if self._session is None:
            self._session = ReadSession(self.db.session())
        return self._session

    async def after_write(self) -> None:
        """Called once a mutation committed: reads that follow must see what it wrote.

        The read session's transaction may have begun before the mutation (on SQLite its
        snapshot would hide the commit), and DataLoaders may hold rows from before it, so
        both start afresh. Objects already loaded stay usable (detached, not expired)."""
        await self.close()
        self._loaders = None

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self)
        return self._loaders

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class ReadSession:
    """An AsyncSession that sibling resolvers may share.

    strawberry resolves sibling fields concurrently, but one AsyncSession (one connection)
    runs one statement at a time; this wrapper queues the statements of a request instead of
    failing with "concurrent operations are not permitted". Results are buffered, so the
    lock covers only the round trip."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._lock = asyncio.Lock()

    async def execute(self, *args: Any, **kwargs: Any):
        async with self._lock:
            return await self._session.execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any):
        async with self._lock:
            return await self._session.scalar(*args, **kwargs)

    async def scalars(self, *args: Any, **kwargs: Any):
        async with self._lock:
            return await self._session.scalars(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any):
        async with self._lock:
            return await self._session.get(*args, **kwargs)

    async def commit(self) -> None:
        async with self._lock:
            await self._session.commit()

    async def connection(self, *args: Any, **kwargs: Any):
        async with self._lock:
            return await self._session.connection(*args, **kwargs)

    async def close(self) -> None:
        async with self._lock:
            await self._session.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)
