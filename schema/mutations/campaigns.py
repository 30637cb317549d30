"""Campaign mutations: a sponsor (or ADMIN) creates a campaign, an operator enrols members."""

from __future__ import annotations

from decimal import Decimal as PyDecimal

import strawberry

from gateway import campaigns as campaign_service
from gateway.errors import InvalidInput
from schema.errors import UserError, forbidden, mutate
from schema.permissions import OPERATOR, SPONSOR, needs, principal_of
from schema.scalars import BigInt, Date, Decimal
from schema.types.campaigns import Campaign


@strawberry.input
class CreateCampaignInput:
    code: str
    name: str
    sponsor_code: str | None = strawberry.field(
        default=None, description="ADMIN: required. SPONSOR: its own code or omitted."
    )
    beneficiary_code: str
    starts_on: Date
    ends_on: Date
    won_per_km: BigInt
    goal_steps: BigInt | None = None
    won_per_achiever: BigInt
    match_ratio: Decimal
    budget_won: BigInt


@strawberry.type
class CampaignPayload:
    campaign: Campaign | None
    errors: list[UserError]


@strawberry.input
class JoinCampaignInput:
    member_external_id: str
    campaign_code: str


@strawberry.type
class JoinCampaignPayload:
    campaign: Campaign | None
    errors: list[UserError]


def _sponsor_code(info, given: str | None) -> str | None:
    """ADMIN names the sponsor (None: it did not); a SPONSOR creates campaigns for itself only."""
    principal = principal_of(info)
    if principal.is_admin:
        return given or None
    if principal.partner_kind != "SPONSOR" or given not in (None, principal.partner_code):
        raise forbidden("A sponsor creates campaigns for itself only.")
    return principal.partner_code


@strawberry.type
class Mutation:
    @strawberry.mutation(description="ADMIN or SPONSOR.", extensions=needs("campaigns:write", SPONSOR))
    async def create_campaign(self, info: strawberry.Info, input: CreateCampaignInput) -> CampaignPayload:
        sponsor_code = _sponsor_code(info, input.sponsor_code)

        async def work(session):
            if sponsor_code is None:
                raise InvalidInput(
                    "ADMIN must name the campaign's sponsor: sponsorCode", field=["input", "sponsorCode"]
                )
            return await campaign_service.create_campaign(
                session=session,
                code=input.code,
                name=input.name,
                sponsor_code=sponsor_code,
                beneficiary_code=input.beneficiary_code,
                starts_on=input.starts_on,
                ends_on=input.ends_on,
                won_per_km=input.won_per_km,
                goal_steps=input.goal_steps,
                won_per_achiever=input.won_per_achiever,
                match_ratio=PyDecimal(input.match_ratio),
                budget_won=input.budget_won,
            )

        return await mutate(
            info,
            work,
            lambda c, errors: CampaignPayload(campaign=Campaign.from_model(c), errors=errors),
        )

    @strawberry.mutation(description="OPERATOR.", extensions=needs("campaigns:write", OPERATOR))
    async def join_campaign(self, info: strawberry.Info, input: JoinCampaignInput) -> JoinCampaignPayload:
        principal = principal_of(info)
        if principal.partner_kind != "OPERATOR":
            raise forbidden("Only an OPERATOR enrols its members.")
        return await mutate(
            info,
            lambda session: campaign_service.join_campaign(
                session=session,
                operator_id=principal.partner_id,
                member_external_id=input.member_external_id,
                campaign_code=input.campaign_code,
            ),
            lambda c, errors: JoinCampaignPayload(campaign=Campaign.from_model(c), errors=errors),
        )
