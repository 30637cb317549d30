"""The GraphQL schema: each area contributes a Query and a Mutation class, merged here."""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from schema.descriptions import describe
from schema.extensions import GatewaySchema, default_extensions
from schema.input_text import StorableText
from schema.mutations import campaigns as campaign_mutations
from schema.mutations import connectors as connector_mutations
from schema.mutations import donations as donation_mutations
from schema.mutations import exchange as exchange_mutations
from schema.mutations import members as member_mutations
from schema.mutations import partners as partner_mutations
from schema.mutations import persisted_queries as persisted_query_mutations
from schema.mutations import redemption as redemption_mutations
from schema.mutations import settlement as settlement_mutations
from schema.mutations import webhooks as webhook_mutations
from schema.queries import audit as audit_queries
from schema.queries import campaigns as campaign_queries
from schema.queries import connectors as connector_queries
from schema.queries import donations as donation_queries
from schema.queries import members as member_queries
from schema.queries import partners as partner_queries
from schema.queries import redemption as redemption_queries
from schema.queries import settlement as settlement_queries
from schema.queries import webhooks as webhook_queries
from schema.types import partners as _partner_types  # noqa: F401  (types reached only through interfaces)

# One line per area; the order is the order of fields in the exported SDL.
QUERIES: tuple[type, ...] = (
    partner_queries.Query,
    member_queries.Query,
    audit_queries.Query,
    campaign_queries.Query,
    donation_queries.Query,
    redemption_queries.Query,
    settlement_queries.Query,
    connector_queries.Query,
    webhook_queries.Query,
)
MUTATIONS: tuple[type, ...] = (
    partner_mutations.Mutation,
    member_mutations.Mutation,
    campaign_mutations.Mutation,
    donation_mutations.Mutation,
    redemption_mutations.Mutation,
    exchange_mutations.Mutation,
    settlement_mutations.Mutation,
    connector_mutations.Mutation,
    webhook_mutations.Mutation,
    persisted_query_mutations.Mutation,
)


def build_schema(extensions: list | None = None) -> strawberry.Schema:
    """The schema with the gateway's own extensions (limits, validation cache, audit log,
    metrics; schema/extensions.py; the storable-text guard, schema/input_text.py) followed
    by `extensions` (classes or factories)."""
    query = merge_types("Query", QUERIES)
    mutation = merge_types("Mutation", MUTATIONS)
    schema = GatewaySchema(
        query=query, mutation=mutation, extensions=[*default_extensions(), StorableText, *(extensions or [])]
    )
    describe(schema._schema)  # the catalogue fills what the strawberry definitions leave undescribed
    return schema


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
