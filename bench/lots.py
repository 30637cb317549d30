"""Benchmark: the cost of a payment against the length of the member's earning history (PostgreSQL).

    .venv/bin/python bench/lots.py                 # 300 payments a phase, 1,000 lots
    .venv/bin/python bench/lots.py --payments 100 --lots 1000 --profile /tmp/lots.html

A scratch database on $GATEWAY_TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/postgres)
is created (tables from the models) and dropped afterwards. Two members of one operator pay at
one merchant, in this process, through the domain service (`gateway.redemption`, no HTTP):

* **short history**: one earning lot holding all the member's points;
* **long history**: `--lots` earning lots (one a day, oldest first), each large enough that
  every payment is covered by the oldest lot, as for a member who has walked every day.

Two ways of paying, each timed for `--payments` payments per member, one after the other:

* **one step**: `authorize(capture=True)`, one REDEEM posting (`ledger.post`, lots debited);
* **two steps**: `authorize` then `capture` (a hold taking from the lots with its HoldLot rows,
  then the posting of the hold).

It prints payments per second for both members and the ratio long / short (1.0: the history
costs nothing). `--profile FILE` runs pyinstrument over the long-history phases and writes its
text report to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from checkout import PG_ADMIN_DSN, admin, create_tables  # noqa: E402  (bench/checkout.py)

from gateway import ledger, redemption  # noqa: E402
from gateway.codes import code_hash, new_code  # noqa: E402
from gateway.db import Database  # noqa: E402
from gateway.members import enroll  # noqa: E402
from gateway.models import EntryKind, PartnerKind  # noqa: E402
from gateway.partners import create_partner  # noqa: E402

AMOUNT_WON = 100
#: Points in each lot: every payment of a run is covered by the member's oldest lot.
LOT_POINTS = 10**9


async def build(url: str, lots: int) -> tuple[int, dict[str, int]]:
    """An operator, a merchant, and two members: one with a single lot, one with `lots` lots."""
    db = Database(url)
    try:
        async with db.transaction() as s:
            op = await create_partner(
                session=s,
                code="seoul-walking",
                name="Seoul Walking",
                kind=PartnerKind.OPERATOR,
                unit_code="SWM",
                won_per_point=Decimal("1"),
            )
            shop = await create_partner(
                session=s, code="shop", name="Shop", kind=PartnerKind.MERCHANT, operator_code="seoul-walking"
            )
            issuance = await ledger.issuance_account(s, op.id)
            members = {}
            now = dt.datetime.now(dt.UTC)
            for name, count in (("short", 1), ("long", lots)):
                member = await enroll(session=s, operator_id=op.id, external_id=f"{name}-history")
                wallet = await ledger.wallet_account(s, member)
                # One EARN a day, the oldest first to expire, as daily walking leaves them.
                await ledger.post_many(
                    session=s,
                    now=now,
                    postings=[
                        ledger.Posting(
                            EntryKind.EARN,
                            [
                                ledger.Leg(
                                    issuance, wallet, LOT_POINTS, lot_expires_at=now + dt.timedelta(days=30 + day)
                                )
                            ],
                            memo=f"walk {day}",
                        )
                        for day in range(count)
                    ],
                )
                members[name] = member.id
        return shop.id, members
    finally:
        await db.dispose()


async def issue_codes(dsn: str, member_id: int, count: int) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    codes = [new_code() for _ in range(count)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "member_codes",
            columns=["member_id", "purpose", "code_hash", "expires_at", "used_at", "created_at"],
            records=[(member_id, "PAYMENT", code_hash(c), now + dt.timedelta(hours=2), None, now) for c in codes],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return codes


async def pay(db: Database, shop_id: int, code: str, two_steps: bool) -> None:
    async with db.transaction() as session:
        r = await redemption.authorize(
            session=session,
            merchant_id=shop_id,
            code=code,
            amount_won=AMOUNT_WON,
            order_id=f"bench-{uuid.uuid4().hex[:12]}",
            idempotency_key=uuid.uuid4().hex,
            capture=not two_steps,
        )
        if two_steps:
            await redemption.capture(
                session=session, merchant_id=shop_id, redemption_id=r.id, idempotency_key=uuid.uuid4().hex
            )


async def phase(db: Database, shop_id: int, codes: list[str], count: int, two_steps: bool) -> float:
    """Payments per second over `count` payments, one at a time."""
    for _ in range(3):  # warm-up: connections, statement caches
        await pay(db, shop_id, codes.pop(), two_steps)
    began = time.perf_counter()
    for _ in range(count):
        await pay(db, shop_id, codes.pop(), two_steps)
    return count / (time.perf_counter() - began)


async def run(lots: int, payments: int, profile: Path | None) -> dict[tuple[str, str], float]:
    name = f"bench_lots_{uuid.uuid4().hex[:8]}"
    base_dsn = PG_ADMIN_DSN.rsplit("/", 1)[0]
    url = f"{base_dsn.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    await admin(f'CREATE DATABASE "{name}"')
    try:
        await create_tables(url)
        shop_id, members = await build(url, lots)
        codes = {m: await issue_codes(f"{base_dsn}/{name}", members[m], 2 * payments + 10) for m in members}
        db = Database(url)
        results = {}
        try:
            for way, two_steps in (("one step", False), ("two steps", True)):
                for member in ("short", "long"):
                    profiler = None
                    if profile is not None and member == "long":
                        from pyinstrument import Profiler  # only when asked: a dev dependency

                        profiler = Profiler(async_mode="enabled")
                        profiler.start()
                    results[(way, member)] = await phase(db, shop_id, codes[member], payments, two_steps)
                    if profiler is not None:
                        profiler.stop()
                        with open(profile, "a") as sink:
                            sink.write(f"==== {way}, {lots} lots\n")
                            sink.write(profiler.output_text(unicode=False, color=False, show_all=False))
                    print(f"  {way:9} {member:5} history: {results[(way, member)]:7.1f} payments/s", flush=True)
        finally:
            await db.dispose()
        return results
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=300, help="timed payments per member and way (default 300)")
    parser.add_argument("--lots", type=int, default=1000, help="earning lots of the long-history member (default 1000)")
    parser.add_argument(
        "--profile", type=Path, help="write a pyinstrument text profile of the long-history phases here"
    )
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if args.profile is not None:
        args.profile.write_text("")
    print(
        f"lots benchmark at {commit}: {args.payments} payments a phase, 1 lot vs {args.lots} lots; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = asyncio.run(run(args.lots, args.payments, args.profile))
    for way in ("one step", "two steps"):
        short, long = results[(way, "short")], results[(way, "long")]
        print(f"{way}: 1 lot {short:.1f}/s, {args.lots} lots {long:.1f}/s, ratio {long / short:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
