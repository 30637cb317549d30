"""Point donations: a member gives points to a beneficiary; a campaign's sponsor matches.

What a caller may rely on
-------------------------
* `donate_points` moves the member's points to the beneficiary's "donations" account in the
  member's unit (a DONATE posting), worth `floor(points x wonPerPoint)` won (contract,
  "Money"). With a campaign (which must be ACTIVE and be for that beneficiary) the sponsor
  matches `floor(wonValue x matchRatio)` won within the campaign's budget (cut to what is
  left; `BudgetExhausted` when a match is due and nothing is left). The DONATE posting and
  the sponsor's KRW match share one ledger reference, the donation's.
* It is idempotent per (operator, idempotencyKey) through `gateway.idempotency`, and emits
  `donation.created` for the operator, the beneficiary and the sponsor (if any).
* Errors change nothing: NotFound (member, beneficiary, campaign), InvalidInput,
  InsufficientPoints, MemberSuspended, CampaignNotActive, BudgetExhausted,
  IdempotencyKeyReused.
* `visible_donations` is the tenancy of the `donations` query: an OPERATOR sees its members'
  donations, a BENEFICIARY those it received, a SPONSOR those on its campaigns, ADMIN all.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import campaigns as campaign_service
from gateway import ledger
from gateway.db import utcnow
from gateway.errors import InvalidInput, NotFound
from gateway.idempotency import run_idempotent
from gateway.members import require_member
from gateway.models import Account, EntryKind, Partner, PartnerKind
from gateway.models.campaigns import Campaign, Donation
from gateway.outbox import emit
from gateway.redemption import won_value

MAX_POINTS = 10**12
BENEFICIARY_PURPOSE = "donations"


async def get_donation(session: AsyncSession, donation_id: int) -> Donation | None:
    return await session.get(Donation, donation_id, populate_existing=True)


async def donate_points(
    *,
    session: AsyncSession,
    operator_id: int,
    member_external_id: str,
    beneficiary_code: str,
    points: int,
    campaign_code: str | None,
    idempotency_key: str,
    now: dt.datetime | None = None,
) -> Donation:
    """Give `points` of the operator's member to the beneficiary (see the module docstring)."""
    now = now or utcnow()
    request = {
        "memberExternalId": member_external_id,
        "beneficiaryCode": beneficiary_code,
        "points": points,
        "campaignCode": campaign_code,
    }

    async def work() -> dict:
        donation = await _donate(
            session=session,
            operator_id=operator_id,
            member_external_id=member_external_id,
            beneficiary_code=beneficiary_code,
            points=points,
            campaign_code=campaign_code,
            now=now,
        )
        return {"donation_id": donation.id}

    result = await run_idempotent(
        session=session,
        partner_id=operator_id,
        key=idempotency_key,
        operation="donatePoints",
        request=request,
        work=work,
    )
    donation = await get_donation(session, result["donation_id"])
    assert donation is not None
    return donation


async def _donate(
    *,
    session: AsyncSession,
    operator_id: int,
    member_external_id: str,
    beneficiary_code: str,
    points: int,
    campaign_code: str | None,
    now: dt.datetime,
) -> Donation:
    if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= MAX_POINTS:
        raise InvalidInput(f"points must be a whole number from 1 to {MAX_POINTS}", field=["input", "points"])
    beneficiary = (
        await session.execute(sa.select(Partner).where(Partner.code == beneficiary_code))
    ).scalar_one_or_none()
    if beneficiary is None or beneficiary.kind != PartnerKind.BENEFICIARY:
        raise NotFound(f"No beneficiary with code {beneficiary_code!r}", field=["input", "beneficiaryCode"])
    campaign = None
    if campaign_code is not None:
        campaign = await campaign_service.require_campaign(session, campaign_code, field=["input", "campaignCode"])
        if campaign.beneficiary_id != beneficiary.id:
            raise InvalidInput(
                f"Campaign {campaign_code!r} gives to another beneficiary than {beneficiary_code!r}",
                field=["input", "campaignCode"],
            )
    operator = await session.get(Partner, operator_id)
    # Same lock order as record_activities and join_campaign: issuance account, wallets,
    # then commitments.
    issuance = await ledger.issuance_account(session, operator_id)
    await session.execute(sa.select(Account.id).where(Account.id == issuance.id).with_for_update())
    member = await require_member(session, operator_id, member_external_id)
    wallet = await ledger.wallet_account(session, member, unit=operator.unit_code)
    received = await ledger.partner_account(session, beneficiary.id, operator.unit_code, BENEFICIARY_PURPOSE)
    worth = won_value(points, operator.won_per_point)
    txn = await ledger.post(
        session=session,
        kind=EntryKind.DONATE,
        legs=[ledger.Leg(wallet, received, points)],
        memo=f"donation to {beneficiary.code}" + (f" (campaign {campaign.code})" if campaign else ""),
        now=now,
    )
    matched = 0
    if campaign is not None:
        matched = await campaign_service.match_donation(
            session=session, campaign=campaign, won_value=worth, reference=txn.reference, now=now
        )
    donation = Donation(
        reference=txn.reference,
        operator_id=operator_id,
        member_id=member.id,
        beneficiary_id=beneficiary.id,
        campaign_id=campaign.id if campaign else None,
        points=points,
        unit=operator.unit_code,
        won_value=worth,
        matched_won=matched,
        created_at=now,
    )
    session.add(donation)
    await session.flush()
    await emit(
        session=session,
        type="donation.created",
        partner_ids=[operator_id, beneficiary.id, campaign.sponsor_id if campaign else None],
        data={
            "reference": donation.reference,
            "operator": operator.code,
            "beneficiary": beneficiary.code,
            "campaign": campaign.code if campaign else None,
            "points": str(points),
            "unit": donation.unit,
            "wonValue": str(worth),
            "matchedWon": str(matched),
        },
        now=now,
    )
    return donation


def visible_donations(
    *,
    partner_id: int,
    partner_kind: str,
    campaign_code: str | None = None,
    beneficiary_code: str | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
) -> sa.Select:
    """The donations a partner may see, filtered (order and paging left to the caller).

    `created_from` is inclusive, `created_to` exclusive."""
    stmt = sa.select(Donation)
    if partner_kind == "OPERATOR":
        stmt = stmt.where(Donation.operator_id == partner_id)
    elif partner_kind == "BENEFICIARY":
        stmt = stmt.where(Donation.beneficiary_id == partner_id)
    elif partner_kind == "SPONSOR":
        stmt = stmt.where(Donation.campaign_id.in_(sa.select(Campaign.id).where(Campaign.sponsor_id == partner_id)))
    elif partner_kind != "ADMIN":
        stmt = stmt.where(sa.false())
    if campaign_code is not None:
        stmt = stmt.where(
            Donation.campaign_id == sa.select(Campaign.id).where(Campaign.code == campaign_code).scalar_subquery()
        )
    if beneficiary_code is not None:
        stmt = stmt.where(
            Donation.beneficiary_id == sa.select(Partner.id).where(Partner.code == beneficiary_code).scalar_subquery()
        )
    if created_from is not None:
        stmt = stmt.where(Donation.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(Donation.created_at < created_to)
    return stmt


def can_see(donation: Donation, *, partner_id: int, partner_kind: str, sponsor_id: int | None) -> bool:
    """Tenancy of one donation (`sponsor_id`: its campaign's sponsor, if any)."""
    if partner_kind == "ADMIN":
        return True
    if partner_kind == "OPERATOR":
        return donation.operator_id == partner_id
    if partner_kind == "BENEFICIARY":
        return donation.beneficiary_id == partner_id
    if partner_kind == "SPONSOR":
        return sponsor_id is not None and sponsor_id == partner_id
    return False


__all__ = ["can_see", "donate_points", "get_donation", "visible_donations"]
