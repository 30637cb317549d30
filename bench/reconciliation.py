"""Benchmark: reconcile 1,000,000 partner records against 1,000,000 gateway movements (PostgreSQL).

    .venv/bin/python bench/reconciliation.py              # 1,000,000 a side
    .venv/bin/python bench/reconciliation.py --rows 100000

A scratch database on $GATEWAY_TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/postgres)
is created and dropped afterwards. The gateway's side is bulk SQL: 900,000 captures of one
agreement in January 2025 and 100,000 partial refunds (two per refunded movement, sharing its
reference). The partner's report goes through the real path, `gateway.reconciliation.stage_report`
fed by an async generator (batches of 5,000, COPY), with planted differences: 0.2 % of the
captures left out (MISSING_AT_PARTNER), 0.1 % with another amount, 0.1 % reported twice, 0.1 %
unknown to the gateway; the two refunds of a movement reported in the other order.

Then, side by side on the same staged data, each after a warm-up read of both tables:

* gateway: `gateway.reconciliation.run_matching` (exact pairs per reference, kind and amount
  first, the rest paired in time order; discrepancies inserted; counts; the event);
* full outer join: one plain statement, `FULL OUTER JOIN` on (reference, kind), rows that are
  not equal inserted into a table of the same shape, counts by class.

Time is wall-clock. Memory: the benchmark process's peak RSS during the step (Linux
`/proc/self/clear_refs` resets the high-water mark), and the peak private memory (RssAnon) of
the PostgreSQL backends serving the scratch database, sampled every 50 ms, plus the temporary
file bytes PostgreSQL wrote (pg_stat_database.temp_bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import time
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from gateway import reconciliation  # noqa: E402
from gateway.db import Base, Database, make_engine  # noqa: E402
from gateway.models import (  # noqa: E402
    Agreement,
    FlowKind,
    Partner,
    PartnerKind,
    SettlementPeriod,
)
from gateway.reconciliation import ReportRecord  # noqa: E402

PG_ADMIN_DSN = os.environ.get("GATEWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
SEOUL = ZoneInfo("Asia/Seoul")
JANUARY = dt.datetime(2025, 1, 1, tzinfo=SEOUL)
FEE_BPS = 250
REFUNDS = (300, 200)


# ---------------------------------------------------------------- the data


def plan(rows: int) -> dict:
    """Sizes and the expected classification for `rows` movements a side."""
    captures = rows * 9 // 10
    refunded = (rows - captures) // 2  # movements with two partial refunds each
    per_mille = lambda r: captures // 1000 + (1 if captures % 1000 > r else 0)  # noqa: E731  (i % 1000 == r)
    left_out = per_mille(1) + per_mille(4)
    return {
        "captures": captures,
        "refunded": refunded,
        "gateway": captures + 2 * refunded,
        "partner": captures - left_out + per_mille(3) + per_mille(5) + 2 * refunded,
        "missing_at_partner": left_out,
        "amount_mismatch": per_mille(2),
        "duplicates": per_mille(3),
        "missing_in_gateway": per_mille(5),
    }


def gross(i: int) -> int:
    return 1_000 + i % 50_000


def reference(i: int) -> str:
    return f"mv_{i:012d}"


def captured_at(i: int, captures: int) -> dt.datetime:
    # Spread over the first 26 days of January (Asia/Seoul).
    return JANUARY + dt.timedelta(seconds=i * (26 * 86400 // max(captures, 1)))


def refunded(i: int, captures: int, refunded_count: int) -> bool:
    step = max(captures // max(refunded_count, 1), 1)
    return i % step == 0 and i // step < refunded_count


async def load_gateway(db: Database, agreement_id: int, a: int, b: int, p: dict) -> None:
    """The gateway's flows, in bulk SQL."""
    captures, refunded_count = p["captures"], p["refunded"]
    spacing = 26 * 86400 // max(captures, 1)
    step = max(captures // max(refunded_count, 1), 1)
    fee = lambda expr: f"(({expr}) * {FEE_BPS}) / 10000"  # noqa: E731
    amount = "(1000 + i % 50000)"
    common = "agreement_id, kind, payer_id, payee_id, reference, gross_won, fee_won, net_won, occurred_at, created_at"
    async with db.transaction() as s:
        await s.execute(
            sa.text(f"""
            INSERT INTO settlement_flows ({common})
            SELECT {agreement_id}, 'CROSS_REDEMPTION', CASE WHEN i % 2 = 0 THEN {a} ELSE {b} END, CASE WHEN i % 2 = 0 THEN {b} ELSE {a} END,
                   'mv_' || lpad(i::text, 12, '0'), {amount}, {fee(amount)}, {amount} - {fee(amount)},
                   TIMESTAMPTZ '2025-01-01 00:00:00+09' + i * INTERVAL '{spacing} seconds',
                   TIMESTAMPTZ '2025-01-01 00:00:00+09' + i * INTERVAL '{spacing} seconds'
            FROM generate_series(0, {captures - 1}) AS s(i)
        """)
        )
        for n, won in enumerate(REFUNDS, start=1):
            await s.execute(
                sa.text(f"""
                INSERT INTO settlement_flows ({common})
                SELECT {agreement_id}, 'CROSS_REFUND', CASE WHEN i % 2 = 0 THEN {b} ELSE {a} END, CASE WHEN i % 2 = 0 THEN {a} ELSE {b} END,
                       'mv_' || lpad(i::text, 12, '0'), {won}, {fee(won)}, {won} - {fee(won)},
                       TIMESTAMPTZ '2025-01-01 00:00:00+09' + i * INTERVAL '{spacing} seconds' + INTERVAL '{n} hours',
                       TIMESTAMPTZ '2025-01-01 00:00:00+09' + i * INTERVAL '{spacing} seconds' + INTERVAL '{n} hours'
                FROM generate_series(0, {captures - 1}, {step}) AS s(i)
                WHERE i / {step} < {refunded_count}
            """)
            )


async def partner_report(p: dict):
    """The partner's records, generated as they are streamed (never a list)."""
    captures, refunded_count = p["captures"], p["refunded"]
    R, RF = FlowKind.CROSS_REDEMPTION, FlowKind.CROSS_REFUND
    for i in range(captures):
        r = i % 1000
        at = captured_at(i, captures)
        if r not in (1, 4):
            yield ReportRecord(reference(i), R, gross(i) + (1 if r == 2 else 0), at)
        if r == 3:
            yield ReportRecord(reference(i), R, gross(i), at)
        if r == 5:
            yield ReportRecord(f"mv_extra{i:08d}", R, gross(i), at)
        if refunded(i, captures, refunded_count):
            # The other order than the gateway's, and stamped a little differently.
            for n, won in reversed(list(enumerate(REFUNDS, start=1))):
                yield ReportRecord(reference(i), RF, won, at + dt.timedelta(hours=n, seconds=7))
        if i % 5000 == 0:
            await asyncio.sleep(0)


BASELINE = """
WITH j AS (
    SELECT COALESCE(p.reference, g.reference) AS reference,
           COALESCE(p.kind, g.kind) AS kind,
           CASE WHEN g.id IS NULL THEN 'MISSING_IN_GATEWAY'
                WHEN p.seq IS NULL THEN 'MISSING_AT_PARTNER'
                WHEN p.amount_won <> g.gross_won THEN 'AMOUNT_MISMATCH'
                ELSE 'MATCHED' END AS class,
           g.gross_won, p.amount_won
    FROM (SELECT seq, reference, kind, amount_won FROM reconciliation_records WHERE run_id = :run) AS p
    FULL OUTER JOIN (
        SELECT id, reference, kind, gross_won FROM settlement_flows
        WHERE agreement_id = :agreement AND occurred_at >= :start AND occurred_at < :end
    ) AS g ON p.reference = g.reference AND p.kind = g.kind
),
kept AS (
    INSERT INTO bench_fulljoin_discrepancies (reference, kind, class, gateway_amount_won, partner_amount_won)
    SELECT reference, kind, class, gross_won, amount_won FROM j WHERE class <> 'MATCHED'
    RETURNING 1
)
SELECT class, count(*) FROM j GROUP BY class
"""


# ---------------------------------------------------------------- measuring


def _status(pid: int | str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


class Measure:
    """Wall time, this process's peak RSS, the scratch database's backends' peak private
    memory and temporary bytes, for one step."""

    def __init__(self, dsn: str, dbname: str) -> None:
        self.dsn, self.dbname = dsn, dbname

    async def __aenter__(self) -> Measure:
        self.conn = await asyncpg.connect(self.dsn)
        self.temp_before = await self._temp_bytes()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset this process's RSS high-water mark
        except OSError:
            pass
        self.backend_peak = 0
        self._stop = asyncio.Event()
        self._sampler = asyncio.create_task(self._sample())
        self.started = time.perf_counter()
        return self

    async def __aexit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started
        self.process_peak = _status("self", "VmHWM")
        self._stop.set()
        await self._sampler
        await asyncio.sleep(1.2)  # backends report their statistics at the end of a transaction
        self.temp_bytes = await self._temp_bytes() - self.temp_before
        await self.conn.close()

    async def _temp_bytes(self) -> int:
        await self.conn.execute("SELECT pg_stat_clear_snapshot()")
        return await self.conn.fetchval("SELECT temp_bytes FROM pg_stat_database WHERE datname = $1", self.dbname)

    async def _sample(self) -> None:
        own = await self.conn.fetchval("SELECT pg_backend_pid()")
        while not self._stop.is_set():
            pids = await self.conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2", self.dbname, own
            )
            self.backend_peak = max(self.backend_peak, sum(_status(r["pid"], "RssAnon") for r in pids))
            try:
                await asyncio.wait_for(self._stop.wait(), 0.05)
            except TimeoutError:
                pass

    def row(self, name: str) -> dict:
        return {
            "step": name,
            "seconds": round(self.seconds, 2),
            "process_peak_rss_mib": round(self.process_peak / 2**20, 1),
            "backend_peak_private_mib": round(self.backend_peak / 2**20, 1),
            "temp_file_mib": round(self.temp_bytes / 2**20, 1),
        }


# ---------------------------------------------------------------- the run


async def main(rows: int, keep: bool) -> dict:
    dbname = f"gw_bench_recon_{uuid.uuid4().hex[:8]}"
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{dbname}"')
    await admin.close()
    url = base.replace("postgresql://", "postgresql+asyncpg://") + f"/{dbname}"
    dsn = f"{base}/{dbname}"
    engine = make_engine(url)
    async with engine.begin() as conn:
        import gateway.models

        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(
            sa.text(
                "CREATE TABLE bench_fulljoin_discrepancies (id BIGSERIAL PRIMARY KEY, reference VARCHAR(100), kind VARCHAR(20), "
                "class VARCHAR(20), gateway_amount_won BIGINT, partner_amount_won BIGINT)"
            )
        )
    await engine.dispose()
    db = Database(url)
    p = plan(rows)
    results: dict = {"rows_per_side": rows, "plan": p, "steps": []}
    try:
        async with db.transaction() as s:
            a = Partner(
                code="seoul-walking", name="Seoul Walking", kind=PartnerKind.OPERATOR, unit_code="SWM", won_per_point=1
            )
            b = Partner(
                code="busan-steps", name="Busan Steps", kind=PartnerKind.OPERATOR, unit_code="BSP", won_per_point=1
            )
            s.add_all([a, b])
            await s.flush()
            agreement = Agreement(
                code="seoul-busan",
                operator_a_id=a.id,
                operator_b_id=b.id,
                cross_redemption=True,
                point_exchange=True,
                fee_bps=FEE_BPS,
                settlement_period=SettlementPeriod.MONTHLY,
                starts_on=dt.date(2025, 1, 1),
            )
            s.add(agreement)
            await s.flush()
            ids = (agreement.id, a.id, b.id)
        t = time.perf_counter()
        await load_gateway(db, *ids, p)
        results["load_gateway_seconds"] = round(time.perf_counter() - t, 2)

        async with Measure(dsn, dbname) as staging:
            run_id = await reconciliation.stage_report(
                db=db,
                agreement_id=ids[0],
                partner_id=ids[1],
                period_start=dt.date(2025, 1, 1),
                period_end=dt.date(2025, 1, 31),
                records=partner_report(p),
            )
        results["steps"].append(staging.row("stage the partner's report (stage_report, streamed)"))
        async with db.transaction() as s:
            staged = (
                await s.execute(sa.text("SELECT count(*) FROM reconciliation_records WHERE run_id = :r"), {"r": run_id})
            ).scalar()
            gateway = (await s.execute(sa.text("SELECT count(*) FROM settlement_flows"))).scalar()
        assert (staged, gateway) == (p["partner"], p["gateway"]), (staged, gateway, p)
        conn = await asyncpg.connect(dsn)
        await conn.execute("VACUUM ANALYZE settlement_flows")
        await conn.execute("VACUUM ANALYZE reconciliation_records")

        async def warm() -> None:
            await conn.fetchval("SELECT count(*) FROM settlement_flows")
            await conn.fetchval("SELECT count(*) FROM reconciliation_records")

        await warm()
        async with Measure(dsn, dbname) as ours:
            run = await reconciliation.run_matching(db=db, run_id=run_id)
        results["steps"].append(ours.row("gateway: run_matching"))
        results["gateway_counts"] = {
            "status": run.status.value,
            "partner_records": run.partner_records,
            "matched": run.matched,
            "missing_in_gateway": run.missing_in_gateway,
            "missing_at_partner": run.missing_at_partner,
            "amount_mismatch": run.amount_mismatch,
            "duplicates": run.duplicates,
        }

        await warm()
        start, end = dt.datetime(2025, 1, 1, tzinfo=SEOUL), dt.datetime(2025, 2, 1, tzinfo=SEOUL)
        async with Measure(dsn, dbname) as plain:
            async with db.transaction() as s:
                await s.execute(sa.text("SET LOCAL jit = off"))  # as run_matching does: same footing
                counts = dict(
                    (
                        await s.execute(
                            sa.text(BASELINE), {"run": run_id, "agreement": ids[0], "start": start, "end": end}
                        )
                    ).all()
                )
        results["steps"].append(plain.row("plain FULL OUTER JOIN"))
        results["full_outer_join_counts"] = counts
        await conn.close()
        expected = {k: p[k] for k in ("missing_in_gateway", "missing_at_partner", "amount_mismatch", "duplicates")}
        got = {k: results["gateway_counts"][k] for k in expected}
        results["gateway_counts_as_planted"] = got == expected
        results["ratio_time_gateway_over_join"] = round(ours.seconds / plain.seconds, 2)
    finally:
        await db.dispose()
        if not keep:
            admin = await asyncpg.connect(PG_ADMIN_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            await admin.close()
    return results


def report(results: dict) -> str:
    lines = [
        f"{results['rows_per_side']:,} partner records against {results['plan']['gateway']:,} gateway movements",
        "",
        "| step | seconds | benchmark process peak RSS (MiB) | PostgreSQL backends peak private memory (MiB) | temp files (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in results["steps"]:
        lines.append(
            f"| {s['step']} | {s['seconds']} | {s['process_peak_rss_mib']} | {s['backend_peak_private_mib']} | {s['temp_file_mib']} |"
        )
    lines += [
        "",
        f"time ratio gateway / plain join: {results['ratio_time_gateway_over_join']}",
        f"gateway counts: {json.dumps(results['gateway_counts'])} (as planted: {results['gateway_counts_as_planted']})",
        f"plain join counts: {json.dumps(results['full_outer_join_counts'])}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="movements on each side (default 1,000,000)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    out = asyncio.run(main(args.rows, args.keep))
    print(json.dumps(out, indent=2) if args.json else report(out))
