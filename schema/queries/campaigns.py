"""Campaign queries. Who sees which campaign: gateway.campaigns.can_see (its sponsor, its
beneficiary, every operator, ADMIN)."""

from __future__ import annotations

import strawberry

from gateway import campaigns as campaign_service
from gateway.models.campaigns import Campaign as CampaignRow
from gateway.models.campaigns import CampaignStatus
from schema.node import node_resolver
from schema.pagination import Connection, paginate
from schema.permissions import BENEFICIARY, OPERATOR, SPONSOR, needs, principal_of
from schema.types.campaigns import Campaign, CampaignStatusEnum, campaign_by_code, campaign_by_id


def _visible(info, row: CampaignRow | None) -> bool:
    principal = principal_of(info)
    kind = "ADMIN" if principal.is_admin else principal.partner_kind
    return row is not None and campaign_service.can_see(row, partner_id=principal.partner_id, partner_kind=kind)


@node_resolver("Campaign")
async def _campaign_node(info, pk: int) -> Campaign | None:
    row = await info.context.loaders.get("campaign", campaign_by_id).load(pk)
    return Campaign.from_model(row) if _visible(info, row) else None


@strawberry.type
class Query:
    @strawberry.field(
        description="SPONSOR: its own campaign. BENEFICIARY: one for it. OPERATOR, ADMIN: any.",
        extensions=needs("donations:read", OPERATOR, SPONSOR, BENEFICIARY),
    )
    async def campaign(self, info: strawberry.Info, code: str) -> Campaign | None:
        row = await info.context.loaders.get("campaign_by_code", campaign_by_code).load(code)
        # Another sponsor's campaign answers like one that does not exist.
        return Campaign.from_model(row) if _visible(info, row) else None

    @strawberry.field(
        description="SPONSOR: its own campaigns. BENEFICIARY: those for it. OPERATOR, ADMIN: all. Newest first.",
        extensions=needs("donations:read", OPERATOR, SPONSOR, BENEFICIARY),
    )
    async def campaigns(
        self,
        info: strawberry.Info,
        status: CampaignStatusEnum | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[Campaign]:
        principal = principal_of(info)
        stmt = campaign_service.visible_campaigns(
            partner_id=principal.partner_id,
            partner_kind="ADMIN" if principal.is_admin else principal.partner_kind,
            status=CampaignStatus(status.value) if status is not None else None,
        )
        return await paginate(info, stmt, key=CampaignRow.id, first=first, after=after, to_node=Campaign.from_model)
