"""Donations and donation statements."""

from __future__ import annotations

import datetime as dt

import strawberry

from gateway import donations as donation_service
from gateway import partners as partner_service
from gateway import statements as statement_service
from gateway.errors import DomainError
from gateway.models import PartnerKind
from gateway.models.campaigns import Campaign as CampaignRow
from gateway.models.campaigns import Donation as DonationRow
from schema.errors import forbidden, graphql_error
from schema.node import node_resolver
from schema.pagination import Connection, paginate
from schema.permissions import BENEFICIARY, OPERATOR, SPONSOR, needs, principal_of
from schema.scalars import Date
from schema.types.campaigns import campaign_by_id
from schema.types.donations import Donation, DonationFilter, DonationStatement


def _kind(principal) -> str:
    return "ADMIN" if principal.is_admin else principal.partner_kind


@node_resolver("Donation")
async def _donation_node(info, pk: int) -> Donation | None:
    row = await info.context.session.get(DonationRow, pk)
    if row is None:
        return None
    sponsor_id = None
    if row.campaign_id is not None:
        campaign: CampaignRow | None = await info.context.loaders.get("campaign", campaign_by_id).load(row.campaign_id)
        sponsor_id = campaign.sponsor_id if campaign else None
    principal = principal_of(info)
    if not donation_service.can_see(
        row, partner_id=principal.partner_id, partner_kind=_kind(principal), sponsor_id=sponsor_id
    ):
        return None
    return Donation.from_model(row)


@strawberry.type
class Query:
    @strawberry.field(
        description="OPERATOR: donations of its members. BENEFICIARY: those it received. SPONSOR: those on its campaigns. ADMIN: all.",
        extensions=needs("donations:read", OPERATOR, SPONSOR, BENEFICIARY),
    )
    async def donations(
        self,
        info: strawberry.Info,
        filter: DonationFilter | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[Donation]:
        principal = principal_of(info)
        stmt = donation_service.visible_donations(
            partner_id=principal.partner_id,
            partner_kind=_kind(principal),
            campaign_code=filter.campaign_code if filter else None,
            beneficiary_code=filter.beneficiary_code if filter else None,
            created_from=filter.from_ if filter else None,
            created_to=filter.to if filter else None,
        )
        return await paginate(info, stmt, key=DonationRow.id, first=first, after=after, to_node=Donation.from_model)

    @strawberry.field(
        description="SPONSOR: its own statement for the period. ADMIN: any sponsor's, sponsorCode required.",
        extensions=needs("statements:read", SPONSOR),
    )
    async def donation_statement(
        self, info: strawberry.Info, period_start: Date, period_end: Date, sponsor_code: str | None = None
    ) -> DonationStatement:
        principal = principal_of(info)
        ctx = info.context
        if principal.is_admin:
            if not sponsor_code:
                raise graphql_error("INVALID_INPUT", "ADMIN must name the sponsor: sponsorCode")
            sponsor = await partner_service.get_by_code(ctx.session, sponsor_code)
            if sponsor is None or sponsor.kind != PartnerKind.SPONSOR:
                raise graphql_error("NOT_FOUND", f"No sponsor with code {sponsor_code!r}")
            sponsor_id = sponsor.id
        else:
            # A sponsor's statement is its own; naming another sponsor is a tenancy failure.
            if principal.partner_kind != "SPONSOR" or sponsor_code not in (None, principal.partner_code):
                raise forbidden("A sponsor reads its own statements only.")
            sponsor_id = principal.partner_id
        statement = await statement_service.find_final(
            ctx.session, sponsor_id=sponsor_id, period_start=period_start, period_end=period_end
        )
        if statement is None:
            try:
                async with ctx.db.transaction() as session:
                    statement = await statement_service.donation_statement(
                        session=session,
                        sponsor_id=sponsor_id,
                        period_start=period_start,
                        period_end=period_end,
                        signer=ctx.state.keystore,
                        keep_provisional=max(
                            statement_service.PROVISIONAL_KEEP,
                            dt.timedelta(seconds=ctx.settings.document_url_ttl_seconds + 3600),
                        ),
                    )
            except DomainError as exc:
                raise graphql_error(exc.code, exc.message) from None
        settings = ctx.settings
        urls = statement_service.statement_urls(
            base_url=settings.issuer,
            secret_key=settings.secret_key,
            ttl_seconds=settings.document_url_ttl_seconds,
            statement_id=statement.id,
        )
        return DonationStatement.of(statement, sponsor_id=sponsor_id, urls=urls)
