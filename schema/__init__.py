"""The GraphQL schema: each area contributes a Query and a Mutation class, merged here."""
from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from schema.mutations import partners as partner_mutations
from schema.queries import partners as partner_queries

# One line per area; the order is the order of fields in the exported SDL.
QUERIES: tuple[type, ...] = (
    partner_queries.Query,
)
MUTATIONS: tuple[type, ...] = (
    partner_mutations.Mutation,
)


def build_schema(extensions: list | None = None) -> strawberry.Schema:
    from schema.types import partners as _partner_types  # noqa: F401  (types reached only through interfaces)

    query = merge_types("Query", QUERIES)
    mutation = merge_types("Mutation", MUTATIONS)
    return strawberry.Schema(query=query, mutation=mutation, extensions=extensions or [])


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
