"""Per-request context handed to every resolver."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from auth.principal import Principal
from gateway.db import Database
from gateway.settings import Settings

if TYPE_CHECKING:
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
    _session: AsyncSession | None = None
    _loaders: "Loaders | None" = None

    @property
    def session(self) -> AsyncSession:
        """The request's read session, opened on first use and closed after the response."""
        if self._session is None:
            self._session = self.db.session()
        return self._session

    @property
    def loaders(self) -> "Loaders":
        if self._loaders is None:
            from schema.dataloaders import Loaders

            self._loaders = Loaders(self)
        return self._loaders

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
