"""Batch loaders, one SQL statement per kind of object per request (no N+1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from strawberry.dataloader import DataLoader

from gateway import models

if TYPE_CHECKING:  # type only: schema.context imports this module
    from schema.context import Context


def by_column(ctx: Context, column) -> DataLoader:
    """Rows whose `column` equals each key (None where absent)."""

    async def load(keys: list[Any]) -> list[Any]:
        rows = (await ctx.session.execute(sa.select(column.class_).where(column.in_(set(keys))))).scalars()
        found = {getattr(row, column.key): row for row in rows}
        return [found.get(key) for key in keys]

    return DataLoader(load_fn=load)


def grouped_by(ctx: Context, column, order_by=None) -> DataLoader:
    """Lists of rows per key of `column`."""

    async def load(keys: list[Any]) -> list[list[Any]]:
        stmt = sa.select(column.class_).where(column.in_(set(keys)))
        if order_by is not None:
            stmt = stmt.order_by(order_by)
        groups: dict[Any, list[Any]] = {key: [] for key in keys}
        for row in (await ctx.session.execute(stmt)).scalars():
            groups[getattr(row, column.key)].append(row)
        return [groups[key] for key in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """Created lazily per request (Context.loaders); add an attribute per relation."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._cache: dict[str, DataLoader] = {}
        self.partner = by_column(ctx, models.Partner.id)

    def get(self, name: str, factory: Callable[[Context], DataLoader]) -> DataLoader:
        """A loader defined by another area (types/<area>.py) without editing this file."""
        if name not in self._cache:
            self._cache[name] = factory(self._ctx)
        return self._cache[name]
