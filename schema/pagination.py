"""Relay connections over keyset pagination: newest first by id, cursors stable under inserts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import sqlalchemy as sa
import strawberry

from schema.errors import graphql_error
from schema.ids import decode_cursor, encode_cursor

T = TypeVar("T")
Row = TypeVar("Row")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo


def check_first(info, first: int | None) -> int:
    limit = info.context.settings.max_page_size
    if first is None:
        return 50
    if first < 0:
        raise graphql_error("INVALID_INPUT", "`first` must not be negative")
    if first > limit:
        raise graphql_error("LIMIT_EXCEEDED", f"`first` may be at most {limit}")
    return first


async def paginate(
    info,
    stmt: sa.Select,
    *,
    key: sa.ColumnElement,
    first: int | None,
    after: str | None,
    to_node: Callable[[Row], T],
    ascending: bool = False,
) -> Connection[T]:
    """One page of `stmt` ordered by `key` (a unique, monotonic column such as the id).

    Runs one SQL statement; `to_node` must not query (use DataLoaders for relations).
    """
    n = check_first(info, first)
    position = decode_cursor(after)
    if position == -1:
        raise graphql_error("INVALID_INPUT", "`after` is not a cursor of this list")
    if position is not None:
        stmt = stmt.where(key > position if ascending else key < position)
    stmt = stmt.order_by(key.asc() if ascending else key.desc()).limit(n + 1)
    rows: Sequence = (await info.context.session.execute(stmt)).scalars().all()
    page = rows[:n]
    edges = [Edge(node=to_node(row), cursor=encode_cursor(_key_value(row, key))) for row in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > n,
            has_previous_page=position is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


def _key_value(row, key) -> int:
    return getattr(row, key.key)


def connection(
    rows: Sequence[Row], n: int, *, cursor_of: Callable[[Row], int], to_node: Callable[[Row], T], has_previous: bool
) -> Connection[T]:
    """A connection from rows a service fetched with `limit=n + 1` (the extra row tells
    whether there is a next page)."""
    page = rows[:n]
    edges = [Edge(node=to_node(row), cursor=encode_cursor(cursor_of(row))) for row in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > n,
            has_previous_page=has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )


def after_position(after: str | None) -> int | None:
    """The position an `after` cursor names (None for the first page); INVALID_INPUT if malformed."""
    position = decode_cursor(after)
    if position == -1:
        raise graphql_error("INVALID_INPUT", "`after` is not a cursor of this list")
    return position
