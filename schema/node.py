"""The Node interface and `node(id)` look-up, one resolver per type, tenancy included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry


@strawberry.interface
class Node:
    id: strawberry.ID


#: type name -> async (info, pk) -> the GraphQL object, or None when absent or not visible.
NODE_RESOLVERS: dict[str, Callable[..., Awaitable[object | None]]] = {}


def node_resolver(type_name: str):
    def register(fn):
        NODE_RESOLVERS[type_name] = fn
        return fn

    return register
