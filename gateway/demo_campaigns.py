"""The demo world's campaign: Korea Yakult backs "warm steps for older people" (one of the
2016 campaigns, shared/program.md) at 100 won a km for the Warm Steps Social Cooperative,
with a step challenge and matched donations. A step of `gateway.demo` (runs after the month
of walking, so joining counts what the members already walked); running it again changes
nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from gateway import campaigns, donations
from gateway.db import Database
from gateway.ledger import seoul_date

CODE = "warm-steps-2026"


async def demo_campaign(db: Database, ids: dict[str, int], now: dt.datetime) -> None:
    today = seoul_date(now)
    async with db.transaction() as session:
        campaign = await campaigns.get_campaign(session, CODE)
        if campaign is not None and campaigns.campaign_status(campaign, today) == campaigns.CampaignStatus.ENDED:
            return  # an old demo database: the campaign is over, its figures stay as they were
        if campaign is None:
            await campaigns.create_campaign(
                session=session,
                code=CODE,
                name="Warm steps for older people",
                sponsor_code="korea-yakult",
                beneficiary_code="warm-steps-coop",
                starts_on=today - dt.timedelta(days=30),
                ends_on=today + dt.timedelta(days=30),
                won_per_km=100,
                goal_steps=200_000,
                won_per_achiever=5_000,
                match_ratio=Decimal("1"),
                budget_won=5_000_000,
                now=now,
            )
    for operator_code, prefix, count in (("seoul-walking", "seo", 15), ("gyeonggi-steps", "gye", 5)):
        for n in range(1, count + 1):
            async with db.transaction() as session:
                await campaigns.join_campaign(
                    session=session,
                    operator_id=ids[operator_code],
                    member_external_id=f"{prefix}-member-{n:03d}",
                    campaign_code=CODE,
                    now=now,
                )
    for n, points in ((1, 300), (2, 150), (3, 500)):
        async with db.transaction() as session:
            await donations.donate_points(
                session=session,
                operator_id=ids["seoul-walking"],
                member_external_id=f"seo-member-{n:03d}",
                beneficiary_code="warm-steps-coop",
                points=points,
                campaign_code=CODE,
                idempotency_key=f"demo-donation-{n}",
                now=now,
            )
