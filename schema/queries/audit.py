"""`auditEvents`: the hash-chained audit log, newest first (ADMIN only); sealed events unless asked."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import strawberry

from gateway import models
from schema.pagination import Connection, paginate
from schema.permissions import ADMIN, needs
from schema.types.audit import AuditEvent


@strawberry.type
class Query:
    @strawberry.field(
        description="ADMIN: the audit log, newest first: the events sealed into the hash chain.",
        extensions=needs("admin", ADMIN),
    )
    async def audit_events(
        self,
        info: strawberry.Info,
        first: int | None = 50,
        after: str | None = None,
        include_unsealed: Annotated[
            bool,
            strawberry.argument(
                description="Also the newest events, which the sealer has not chained yet (`sealed: false`)."
            ),
        ] = False,
    ) -> Connection[AuditEvent]:
        stmt = sa.select(models.AuditEvent)
        if not include_unsealed:
            stmt = stmt.where(models.AuditEvent.seq.is_not(None))
        return await paginate(
            info,
            stmt,
            key=models.AuditEvent.id,
            first=first,
            after=after,
            to_node=AuditEvent.from_model,
        )
