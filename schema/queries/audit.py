"""`auditEvents`: the hash-chained audit log, newest first (ADMIN only)."""
from __future__ import annotations

from typing import Optional

import sqlalchemy as sa
import strawberry

from gateway import models
from schema.pagination import Connection, paginate
from schema.permissions import ADMIN, needs
from schema.types.audit import AuditEvent


@strawberry.type
class Query:
    @strawberry.field(description="ADMIN: the audit log, newest first.", extensions=needs("admin", ADMIN))
    async def audit_events(
        self, info: strawberry.Info, first: Optional[int] = 50, after: Optional[str] = None
    ) -> Connection[AuditEvent]:
        return await paginate(
            info,
            sa.select(models.AuditEvent),
            key=models.AuditEvent.id,
            first=first,
            after=after,
            to_node=AuditEvent.from_model,
        )
