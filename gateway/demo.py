"""`mileage-gateway demo`: a small world to explore the gateway with.

Drawn from the program's own story (shared/program.md): the city's walking program and a
cooperating agency's, merchants that take mileage, Korea Yakult as the first sponsor, a
social enterprise that receives donations, a cooperation agreement, members with a month
of walking. Running it again changes nothing in the world but prints fresh credentials
(each demo client's secret is rotated, since secrets are stored only as hashes).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from auth.clients import create_client, rotate_secret
from auth.scopes import scopes_for_kind
from gateway import activity, partners
from gateway.bootstrap import ensure_admin_partner
from gateway.db import Database, utcnow
from gateway.demo_campaigns import demo_campaign
from gateway.ledger import seoul_date
from gateway.migrations import upgrade_sync
from gateway.models import ClientAuthMethod, OAuthClient, PartnerKind, SettlementPeriod
from gateway.settings import Settings


@dataclass(frozen=True)
class DemoPartner:
    code: str
    name: str
    kind: PartnerKind
    unit_code: str | None = None
    won_per_point: Decimal | None = None
    operator_code: str | None = None


PARTNERS = [
    DemoPartner("seoul-walking", "Seoul Walking Mileage", PartnerKind.OPERATOR, "SWM", Decimal("1")),
    DemoPartner("gyeonggi-steps", "Gyeonggi Health Steps", PartnerKind.OPERATOR, "GHS", Decimal("0.5")),
    DemoPartner("mangwon-market-bakery", "Mangwon Market Bakery", PartnerKind.MERCHANT, operator_code="seoul-walking"),
    DemoPartner("suwon-fortress-cafe", "Suwon Fortress Cafe", PartnerKind.MERCHANT, operator_code="gyeonggi-steps"),
    DemoPartner("korea-yakult", "Korea Yakult", PartnerKind.SPONSOR),
    DemoPartner("warm-steps-coop", "Warm Steps Social Cooperative", PartnerKind.BENEFICIARY),
]
MEMBERS = {"seoul-walking": 25, "gyeonggi-steps": 10}
DAYS = 30


async def _ensure_partners(session) -> dict[str, int]:
    ids = {}
    admin = await ensure_admin_partner(session)
    ids[admin.code] = admin.id
    for p in PARTNERS:
        existing = await partners.get_by_code(session, p.code)
        if existing is None:
            existing = await partners.create_partner(
                session=session,
                code=p.code,
                name=p.name,
                kind=p.kind,
                unit_code=p.unit_code,
                won_per_point=p.won_per_point,
                operator_code=p.operator_code,
            )
        ids[p.code] = existing.id
    if (await session.execute(sa.text("SELECT 1 FROM agreements WHERE code = 'seoul-gyeonggi-2026'"))).first() is None:
        await partners.create_agreement(
            session=session,
            code="seoul-gyeonggi-2026",
            operator_a_code="seoul-walking",
            operator_b_code="gyeonggi-steps",
            cross_redemption=True,
            point_exchange=True,
            fee_bps=150,
            settlement_period=SettlementPeriod.MONTHLY,
            starts_on=dt.date(2026, 1, 1),
        )
    return ids


async def _walk_a_month(db: Database, ids: dict[str, int], now: dt.datetime) -> int:
    """A month of walking for each demo member, up to yesterday (a re-run credits nothing)."""
    rng = random.Random(2016)
    today = seoul_date(now)
    credited = 0
    for operator_code, count in MEMBERS.items():
        records = []
        for n in range(1, count + 1):
            member = f"{operator_code[:3]}-member-{n:03d}"
            for back in range(DAYS, 0, -1):
                day = today - dt.timedelta(days=back)
                steps = rng.randint(2_000, 14_000) * (2 if day.day == 11 else 1)
                meters = int(steps * rng.uniform(0.65, 0.8))
                records.append(activity.ActivityIn(member, day, steps, meters, "demo"))
        for start in range(0, len(records), activity.MAX_BATCH):
            async with db.transaction() as session:
                outcomes = await activity.record_activities(
                    session=session,
                    operator_id=ids[operator_code],
                    records=records[start : start + activity.MAX_BATCH],
                    now=now,
                )
            credited += sum(o.points_credited for o in outcomes)
    return credited


async def _credentials(session, ids: dict[str, int]) -> list[dict]:
    """One client per demo partner: created on the first run, its secret rotated on later ones."""
    rows = []
    kinds = {p.code: p.kind for p in PARTNERS}
    kinds["program-office"] = PartnerKind.ADMIN
    for code, partner_id in ids.items():
        partner = await partners.get_by_code(session, code)
        existing = (
            await session.execute(
                sa.select(OAuthClient)
                .where(OAuthClient.partner_id == partner_id, OAuthClient.enabled.is_(True))
                .order_by(OAuthClient.id)
                .limit(1)
            )
        ).scalar_one_or_none()
        if existing is None:
            client, secret = await create_client(
                session=session,
                partner=partner,
                scopes=scopes_for_kind(kinds[code].value),
                auth_method=ClientAuthMethod.CLIENT_SECRET_BASIC,
            )
        else:
            client, secret = await rotate_secret(session=session, client_id=existing.client_id, partner_id=None)
        rows.append(
            {
                "partner": code,
                "kind": kinds[code].value,
                "client_id": client.client_id,
                "client_secret": secret,
                "scope": client.scope,
            }
        )
    return rows


async def load_demo(settings: Settings) -> tuple[list[dict], int]:
    db = Database(settings.database_url)
    try:
        now = utcnow()
        async with db.transaction() as session:
            ids = await _ensure_partners(session)
        credited = await _walk_a_month(db, ids, now)
        await demo_campaign(db, ids, now)  # Korea Yakult's campaign, joins and donations
        async with db.transaction() as session:
            creds = await _credentials(session, ids)
        return creds, credited
    finally:
        await db.dispose()


def cmd_demo(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not args.no_migrate:
        upgrade_sync(settings.database_url)
    creds, credited = asyncio.run(load_demo(settings))
    if args.json:
        print(json.dumps(creds, indent=2))
        return 0
    print(f"Demo world loaded ({credited} points newly credited for walking).\n")
    print(f"{'partner':<24} {'kind':<12} {'client_id':<28} client_secret")
    for row in creds:
        print(f"{row['partner']:<24} {row['kind']:<12} {row['client_id']:<28} {row['client_secret']}")
    base = settings.issuer
    print(
        "\nGet a token (client_secret_basic) and ask who you are:\n"
        f"  TOKEN=$(curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials {base}/oauth/token"
        " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n"
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' "
        f'-d \'{{"query":"{{ viewer {{ clientId partner {{ code kind }} }} }}"}}\' {base}/graphql\n'
        f'GraphiQL: open {base}/graphql and set the header {{"Authorization": "Bearer <token>"}}.'
    )
    return 0


def register_cli(sub) -> None:
    demo = sub.add_parser("demo", help="load the demo world and print each demo client's credentials")
    demo.add_argument("--json", action="store_true", help="print the credentials as JSON")
    demo.add_argument("--no-migrate", action="store_true")
    demo.set_defaults(func=cmd_demo)
