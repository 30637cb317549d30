"""Admin mutation: register a client to run only persisted queries (or lift that)."""

from __future__ import annotations

import strawberry

from gateway import persisted_queries as apq
from schema.errors import mutate
from schema.mutations.partners import ClientPayload
from schema.permissions import ADMIN, needs
from schema.types.partners import Client


@strawberry.input
class SetPersistedQueriesOnlyInput:
    client_id: str
    persisted_queries_only: bool = strawberry.field(
        description=(
            "true: from its next request on, the client runs only queries its partner stored "
            "(extensions.persistedQuery with a known hash); anything else is FORBIDDEN."
        )
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="ADMIN. Registers a client to run only persisted queries, or lifts that.",
        extensions=needs("admin", ADMIN),
    )
    async def set_persisted_queries_only(
        self, info: strawberry.Info, input: SetPersistedQueriesOnlyInput
    ) -> ClientPayload:
        return await mutate(
            info,
            lambda session: apq.set_persisted_only(
                session=session, client_id=input.client_id, enabled=input.persisted_queries_only
            ),
            lambda c, errors: ClientPayload(
                client=Client.from_model(c) if c else None, client_secret=None, errors=errors
            ),
        )
