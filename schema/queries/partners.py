"""Queries of the admin surface: viewer, partner, partners, agreements, node."""

from __future__ import annotations

import strawberry

from gateway import models
from gateway import partners as partner_service
from gateway.models import PartnerKind
from schema.ids import decode_id
from schema.node import NODE_RESOLVERS, Node, node_resolver
from schema.pagination import Connection, paginate
from schema.permissions import ADMIN, OPERATOR, needs, principal_of, visible_to
from schema.types.partners import Agreement, Partner, PartnerKindEnum, Viewer, load_partner


@node_resolver("Partner")
async def _partner_node(info, pk: int) -> Partner | None:
    # The partner directory (code, name, kind) is readable by every partner: it holds no tenant data.
    return Partner.from_model(await info.context.loaders.partner.load(pk))


@node_resolver("Agreement")
async def _agreement_node(info, pk: int) -> Agreement | None:
    row = await info.context.session.get(models.Agreement, pk)
    if row is None or not visible_to(principal_of(info), row.operator_a_id, row.operator_b_id):
        return None
    return Agreement.from_model(row)


@strawberry.type
class Query:
    @strawberry.field(extensions=needs(None))
    async def node(self, info: strawberry.Info, id: strawberry.ID) -> Node | None:
        decoded = decode_id(id)
        if decoded is None or decoded[0] not in NODE_RESOLVERS:
            return None
        return await NODE_RESOLVERS[decoded[0]](info, decoded[1])

    @strawberry.field(description="The calling client and its partner.", extensions=needs(None))
    async def viewer(self, info: strawberry.Info) -> Viewer:
        principal = principal_of(info)
        return Viewer(
            partner=await load_partner(info, principal.partner_id),
            client_id=principal.client_id,
            scopes=sorted(principal.scopes),
        )

    @strawberry.field(extensions=needs(None))
    async def partner(self, info: strawberry.Info, code: str) -> Partner | None:
        return Partner.from_model(await partner_service.get_by_code(info.context.session, code))

    @strawberry.field(description="ADMIN: every partner.", extensions=needs("admin", ADMIN))
    async def partners(
        self,
        info: strawberry.Info,
        kind: PartnerKindEnum | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[Partner]:
        stmt = partner_service.partners_query(kind=PartnerKind(kind.value) if kind else None)
        return await paginate(
            info, stmt, key=models.Partner.id, first=first, after=after, to_node=Partner.from_model, ascending=True
        )

    @strawberry.field(
        description="OPERATOR: agreements it is party to. ADMIN: all.", extensions=needs("settlements:read", OPERATOR)
    )
    async def agreements(self, info: strawberry.Info) -> list[Agreement]:
        principal = principal_of(info)
        stmt = partner_service.agreements_of(None if principal.is_admin else principal.partner_id)
        rows = (await info.context.session.execute(stmt)).scalars().all()
        return [Agreement.from_model(row) for row in rows]
