"""The audit log as partners' ADMIN sees it."""

from __future__ import annotations

import strawberry

from gateway import audit, models
from schema.ids import encode_id
from schema.scalars import DateTime
from schema.types.partners import Partner


async def _partner(root: AuditEvent, info: strawberry.Info) -> Partner | None:
    if root.partner_id is None:
        return None
    return Partner.from_model(await info.context.loaders.partner.load(root.partner_id))


@strawberry.type
class AuditEvent:
    id: strawberry.ID
    at: DateTime
    client_id: str
    partner: Partner | None = strawberry.field(resolver=_partner)
    operation: str
    outcome: str
    hash: str = strawberry.field(
        description="Hex SHA-256 chaining this event to the one before it. An event not sealed yet "
        "(`sealed: false`) shows the SHA-256 of its own fields until the sealer chains it."
    )
    sealed: bool = strawberry.field(
        description="Whether the event is in the hash chain yet (the sealer chains new events within seconds)."
    )
    sequence: int | None = strawberry.field(
        description="The event's position in the hash chain (1, 2, ...); null until sealed."
    )
    partner_id: strawberry.Private[int | None]

    @classmethod
    def from_model(cls, row: models.AuditEvent) -> AuditEvent:
        return cls(
            id=strawberry.ID(encode_id("AuditEvent", row.id)),
            at=row.at,
            client_id=row.client_id,
            operation=row.operation,
            outcome=row.outcome,
            hash=row.hash if row.hash is not None else audit.content_hash(row),
            sealed=row.seq is not None,
            sequence=row.seq,
            partner_id=row.partner_id,
        )
