"""Benchmark: a donation statement for a campaign with 100,000 participants and a month of walking.

    .venv/bin/python bench/statements.py                       # SQLite (a temporary file)
    .venv/bin/python bench/statements.py --backend postgresql  # a scratch database on
        $GATEWAY_TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/postgres), dropped after

Setup is bulk SQL (members, one activity record per participant and day, participants with
their totals, the campaign's per-day figures), not the recording path: what is measured is
the statement itself. Measured, each on its own:

* issue: `gateway.statements.donation_statement` for the closed month: the per-day figures
  sealed, the participants counted over the month's activity records, the canonical JSON,
  its digest and the Ed25519 signature, stored;
* again: the same request once issued (served from the stored bytes);
* csv, pdf: rendering the stored statement.

With `--recording`, it measures instead what commitments add to `recordActivities`: a batch
of 1,000 records with no listener, with the listener but no participants, and with every
member a participant of a running campaign.

Time is wall-clock; "peak Python memory" is tracemalloc's peak during that step; "max RSS"
is the process's high-water mark at the end (setup included).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import secrets
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from auth.keys import KeyStore  # noqa: E402
from gateway import statements  # noqa: E402
from gateway.campaigns import won_for_distance  # noqa: E402
from gateway.db import Base, Database, make_engine  # noqa: E402
from gateway.settings import Settings  # noqa: E402

PG_ADMIN_DSN = os.environ.get("GATEWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
MONTH_START = dt.date(2025, 10, 1)
WON_PER_KM = 100
GOAL_STEPS = 250_000
WON_PER_ACHIEVER = 1_000


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def setup(db: Database, participants: int, days: int) -> dict:
    """Bulk-load the world; returns ids and the expected totals."""
    sqlite = db.dialect == "sqlite"
    end = MONTH_START + dt.timedelta(days=days - 1)
    ts = "'2025-10-01 00:00:00.000000'" if sqlite else "TIMESTAMPTZ '2025-10-01 00:00:00+00'"
    seq = (
        f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {participants}) "
        if sqlite
        else ""
    )
    series = "seq" if sqlite else f"generate_series(1, {participants}) AS seq(n)"
    day_series = (
        f"(WITH RECURSIVE d(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM d WHERE k < {days - 1}) SELECT k FROM d) AS dd"
        if sqlite
        else f"generate_series(0, {days - 1}) AS dd(k)"
    )
    walk_date = f"date('{MONTH_START}', '+' || dd.k || ' days')" if sqlite else f"DATE '{MONTH_START}' + dd.k"
    # Deterministic, plausible walking: 3 to 9 km a day, a 0.75 m stride.
    metres = "(3000 + (m.id * 7919 + dd.k * 104729) % 6000)"

    async with db.transaction() as s:
        ids = {}
        for code, kind, unit in (
            ("bench-op", "OPERATOR", "BOP"),
            ("bench-sponsor", "SPONSOR", None),
            ("bench-foundation", "BENEFICIARY", None),
        ):
            row = await s.execute(
                sa.text(
                    "INSERT INTO partners (code, name, kind, unit_code, won_per_point, created_at) "
                    f"VALUES (:code, :code, :kind, :unit, :wpp, {ts}) RETURNING id"
                ),
                {"code": code, "kind": kind, "unit": unit, "wpp": "1" if unit else None},
            )
            ids[kind] = row.scalar_one()
        row = await s.execute(
            sa.text(
                "INSERT INTO campaigns (code, name, sponsor_id, beneficiary_id, starts_on, ends_on, won_per_km, goal_steps, "
                "won_per_achiever, match_ratio, budget_won, participants, distance_m, distance_won, achievers, "
                "achievement_won, matched_won, committed_won, created_at) VALUES ('bench-month', 'A month of walking', "
                f":sponsor, :beneficiary, :start, :end, {WON_PER_KM}, {GOAL_STEPS}, {WON_PER_ACHIEVER}, :ratio, "
                f"1000000000000, {participants}, 0, 0, 0, 0, 0, 0, {ts}) RETURNING id"
            ),
            {
                "sponsor": ids["SPONSOR"],
                "beneficiary": ids["BENEFICIARY"],
                "start": MONTH_START,
                "end": end,
                "ratio": "1",
            },
        )
        campaign_id = row.scalar_one()
        await s.execute(
            sa.text(
                f"{seq}INSERT INTO members (operator_id, external_id, status, enrolled_at, updated_at) "
                f"SELECT {ids['OPERATOR']}, 'member-' || seq.n, 'ACTIVE', {ts}, {ts} FROM {series}"
            )
        )
        await s.execute(
            sa.text(
                "INSERT INTO activity_records (member_id, date, steps, distance_meters, source, points_credited, created_at, updated_at) "
                f"SELECT m.id, {walk_date}, {metres} * 4 / 3, {metres}, 'bench', 0, {ts}, {ts} "
                f"FROM members m, {day_series} WHERE m.operator_id = {ids['OPERATOR']}"
            )
        )
        await s.execute(
            sa.text(
                "INSERT INTO campaign_participants (campaign_id, member_id, steps, distance_m, achieved_on, achievement_won, joined_at) "
                f"SELECT {campaign_id}, a.member_id, sum(a.steps), sum(a.distance_meters), "
                f"CASE WHEN sum(a.steps) >= {GOAL_STEPS} THEN CAST(:end AS DATE) END, "
                f"CASE WHEN sum(a.steps) >= {GOAL_STEPS} THEN {WON_PER_ACHIEVER} ELSE 0 END, {ts} "
                "FROM activity_records a GROUP BY a.member_id"
            ),
            {"end": end},
        )
        per_day = (
            await s.execute(
                sa.text("SELECT date, count(*), sum(distance_meters) FROM activity_records GROUP BY date ORDER BY date")
            )
        ).all()
        achievers = (
            await s.execute(
                sa.text(
                    f"SELECT count(*) FROM campaign_participants WHERE achieved_on IS NOT NULL AND campaign_id = {campaign_id}"
                )
            )
        ).scalar_one()
        # Per-day figures as the listener keeps them: won of the cumulative floor, day by day.
        total_m = committed = 0
        for n, (date, walkers, day_m) in enumerate(per_day):
            before = won_for_distance(total_m, WON_PER_KM)
            total_m += int(day_m)
            won = won_for_distance(total_m, WON_PER_KM) - before
            last = n == len(per_day) - 1
            await s.execute(
                sa.text(
                    "INSERT INTO campaign_days (campaign_id, date, sealed_by, participants, distance_m, distance_won, "
                    "achievers, achievement_won, matched_won) VALUES (:c, :d, 0, :p, :m, :w, :a, :aw, 0)"
                ),
                {
                    "c": campaign_id,
                    "d": date if not isinstance(date, str) else dt.date.fromisoformat(date),
                    "p": walkers,
                    "m": int(day_m),
                    "w": won,
                    "a": achievers if last else 0,
                    "aw": achievers * WON_PER_ACHIEVER if last else 0,
                },
            )
        distance_won = won_for_distance(total_m, WON_PER_KM)
        committed = distance_won + achievers * WON_PER_ACHIEVER
        await s.execute(
            sa.text(
                "UPDATE campaigns SET distance_m = :m, distance_won = :w, achievers = :a, achievement_won = :aw, "
                "committed_won = :c WHERE id = :id"
            ),
            {
                "m": total_m,
                "w": distance_won,
                "a": achievers,
                "aw": achievers * WON_PER_ACHIEVER,
                "c": committed,
                "id": campaign_id,
            },
        )
    if db.dialect == "postgresql":
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("ANALYZE"))
    else:
        async with db.engine.connect() as conn:
            await conn.execute(sa.text("ANALYZE"))
            await conn.commit()
    records = await _scalar(db, "SELECT count(*) FROM activity_records")
    return {
        "sponsor_id": ids["SPONSOR"],
        "end": end,
        "total_won": committed,
        "distance_won": distance_won,
        "achievers": achievers,
        "records": records,
        "distance_m": total_m,
    }


async def _scalar(db: Database, sql: str):
    async with db.session() as s:
        return (await s.execute(sa.text(sql))).scalar_one()


async def measure(label: str, fn, *, repeat: bool = True):
    """Time `fn` (no tracing, as it runs in production); then, if it may run again, once more
    under tracemalloc for its peak Python memory (tracing slows Python code down a lot)."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = await fn()
    elapsed = time.perf_counter() - started
    peak = None
    if repeat:
        tracemalloc.start()
        await fn()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    memory = f"peak Python memory {peak / 2**20:6.1f} MiB" if peak is not None else "(runs once)"
    print(f"  {label:<26} {elapsed * 1000:9.1f} ms   {memory}   max RSS growth {rss_growth:5.0f} MiB")
    return result


async def run(backend: str, participants: int, days: int, keep: bool = False) -> None:
    tmp = None
    pg_name = None
    if backend == "sqlite":
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{tmp.name}/bench.db"
    else:
        pg_name = f"bench_statements_{uuid.uuid4().hex[:8]}"
        await _pg_exec(f'CREATE DATABASE "{pg_name}"')
        url = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + pg_name
    try:
        import gateway.models  # noqa: F401

        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await engine.dispose()
        settings = Settings.from_env(
            {"GATEWAY_DATABASE_URL": url, "GATEWAY_SECRET_KEY": secrets.token_urlsafe(32), "GATEWAY_SCHEDULER": "0"}
        )
        db = Database(url)
        store = KeyStore(db=db, settings=settings)
        await store.ensure_keys()

        started = time.perf_counter()
        world = await setup(db, participants, days)
        print(
            f"{backend}: {participants:,} participants x {days} days = {world['records']:,} activity records "
            f"(setup {time.perf_counter() - started:.1f} s)"
        )
        closed_now = dt.datetime.combine(world["end"] + dt.timedelta(days=5), dt.time(3), dt.UTC)
        open_now = dt.datetime.combine(world["end"], dt.time(3), dt.UTC)

        half_end = MONTH_START + dt.timedelta(days=days // 2 - 1)
        half_now = dt.datetime.combine(half_end, dt.time(3), dt.UTC)

        def issue(now, end=world["end"]):
            async def go():
                async with db.transaction() as s:
                    return await statements.donation_statement(
                        session=s,
                        sponsor_id=world["sponsor_id"],
                        period_start=MONTH_START,
                        period_end=end,
                        signer=store,
                        now=now,
                    )

            return go

        # While the month is open: provisional statements (nothing sealed). The first half of
        # the campaign counts participants from the activity records of those days; the whole
        # campaign from the participants' running totals.
        half = await measure("provisional, first half", issue(half_now, half_end))
        assert half.lines[0].participants == participants
        provisional = await measure("provisional, whole month", issue(open_now))
        # Once it has ended: issued and sealed once, then served from the stored bytes.
        st = await measure("issue and seal, month", issue(closed_now), repeat=False)
        again = await measure("issued again", issue(closed_now))
        assert provisional.total_won == st.total_won
        assert again.digest == st.digest
        assert st.total_won == world["total_won"], (st.total_won, world["total_won"])
        [line] = st.lines
        assert line.participants == participants and line.distance_won == world["distance_won"]
        assert sum(d.distance_won for d in st.days) == line.distance_won
        assert await store.verify_detached(st.document, st.signature)
        csv_bytes = await measure("csv", lambda: _sync(statements.render_csv, st))
        await measure("pdf, first in process", lambda: _sync(statements.render_pdf, st), repeat=False)  # loads fonts
        pdf_bytes = await measure("pdf", lambda: _sync(statements.render_pdf, st))
        print(
            f"  statement: total {st.total_won:,} won, {line.distance_km} km, {line.achievers:,} achievers, "
            f"{len(st.days)} days; JSON {len(st.document):,} B, CSV {len(csv_bytes):,} B, PDF {len(pdf_bytes):,} B"
        )
        print(f"  max RSS of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        await db.dispose()
    finally:
        if tmp is not None:
            tmp.cleanup()
        if pg_name is not None and keep:
            print(f"  kept: {url}")
        elif pg_name is not None:
            await _pg_exec(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


async def recording(backend: str) -> None:
    """Time 1,000-record batches of `record_activities` with and without commitments."""
    from decimal import Decimal

    from gateway import activity, campaigns, partners

    url, cleanup = await _scratch(backend)
    try:
        import gateway.models  # noqa: F401

        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await engine.dispose()
        db = Database(url)
        now = dt.datetime.now(dt.UTC)
        today = campaigns.seoul_today(now)
        async with db.transaction() as s:
            op = await partners.create_partner(
                session=s,
                code="rec-op",
                name="Op",
                kind=partners.PartnerKind.OPERATOR,
                unit_code="REC",
                won_per_point=Decimal(1),
            )
            for code, kind in (
                ("rec-sponsor", partners.PartnerKind.SPONSOR),
                ("rec-coop", partners.PartnerKind.BENEFICIARY),
            ):
                await partners.create_partner(session=s, code=code, name=code, kind=kind)
            await campaigns.create_campaign(
                session=s,
                code="rec",
                name="Recording",
                sponsor_code="rec-sponsor",
                beneficiary_code="rec-coop",
                starts_on=today - dt.timedelta(days=30),
                ends_on=today,
                won_per_km=100,
                goal_steps=100_000,
                won_per_achiever=10,
                match_ratio=Decimal(1),
                budget_won=10**12,
                now=now,
            )
        saved = list(activity.listeners)
        activity.listeners.clear()
        for label, prefix, join in (
            ("no listener registered", "a", False),
            ("listener, members in no campaign", "b", False),
            ("every member a participant", "c", True),
        ):
            if prefix == "b":
                activity.listeners.extend(saved)
            if join:
                for i in range(1000):
                    async with db.transaction() as s:
                        await campaigns.join_campaign(
                            session=s,
                            operator_id=op.id,
                            member_external_id=f"{prefix}-{i}",
                            campaign_code="rec",
                            now=now,
                        )
            records = [
                activity.ActivityIn(f"{prefix}-{i}", today - dt.timedelta(days=3), 8000, 6000) for i in range(1000)
            ]
            started = time.perf_counter()
            async with db.transaction() as s:
                await activity.record_activities(session=s, operator_id=op.id, records=records, now=now)
            print(f"{backend}: {label:<34} {(time.perf_counter() - started) * 1000:7.0f} ms for 1,000 records")
        await db.dispose()
    finally:
        await cleanup()


async def _scratch(backend: str):
    if backend == "sqlite":
        tmp = tempfile.TemporaryDirectory()

        async def cleanup():
            tmp.cleanup()

        return f"sqlite+aiosqlite:///{tmp.name}/bench.db", cleanup
    name = f"bench_statements_{uuid.uuid4().hex[:8]}"
    await _pg_exec(f'CREATE DATABASE "{name}"')

    async def cleanup():
        await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name, cleanup


async def _sync(fn, *args):
    return fn(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--keep", action="store_true", help="PostgreSQL: keep the scratch database (prints its URL)")
    parser.add_argument("--recording", action="store_true", help="measure what commitments add to recordActivities")
    args = parser.parse_args()
    if args.recording:
        asyncio.run(recording(args.backend))
    else:
        asyncio.run(run(args.backend, args.participants, args.days, args.keep))


if __name__ == "__main__":
    main()
