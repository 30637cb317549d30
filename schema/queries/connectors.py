"""The `connectors` query: ADMIN sees every connector; an OPERATOR or SPONSOR holding
`connectors:write` (the scope of `syncConnector`) sees its own."""

from __future__ import annotations

import strawberry

from gateway import connectors as connector_service
from schema.permissions import OPERATOR, SPONSOR, needs, principal_of
from schema.types.connectors import Connector


@strawberry.type
class Query:
    @strawberry.field(
        description="ADMIN: every connector. OPERATOR, SPONSOR (connectors:write): their own.",
        extensions=needs("connectors:write", OPERATOR, SPONSOR),
    )
    async def connectors(self, info: strawberry.Info) -> list[Connector]:
        principal = principal_of(info)
        stmt = connector_service.connectors_of(None if principal.is_admin else principal.partner_id)
        rows = (await info.context.session.execute(stmt)).scalars().all()
        return [Connector.from_model(row) for row in rows]
