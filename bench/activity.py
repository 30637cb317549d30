"""Benchmark: `recordActivities` in batches of 1,000 records, over HTTP, on PostgreSQL.

    .venv/bin/python bench/activity.py                 # 20 batches per phase
    .venv/bin/python bench/activity.py --batches 5 --no-docs

A scratch database on $GATEWAY_TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/postgres)
is migrated and dropped afterwards; one gateway process (`mileage-gateway serve --no-migrate`,
rate limits lifted, scheduler off) serves it. One operator client posts batches of 1,000
records (1,000 distinct members, one day each) through GraphQL, one batch after the other:

* **new days**: every record CREDITED (members enrolled on the way, EARN postings, lots,
  `activity.credited` events);
* **resent**: the same batches again, every record UNCHANGED (what a retrying app does);
* **corrected**: the same days with other figures, every record ADJUSTED.

Records per second is 1,000 × batches / wall time of the phase, client side (token, HTTP,
GraphQL parsing and the whole transaction included). `--docs` (default) writes the table into
docs/performance.md under "## Recording activity".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from support import start_gateway  # noqa: E402  (bench/support.py)

from auth.clients import create_client  # noqa: E402
from gateway import partners  # noqa: E402
from gateway.db import Database  # noqa: E402
from gateway.migrations import upgrade  # noqa: E402
from gateway.models import ClientAuthMethod, PartnerKind  # noqa: E402

ADMIN_DSN = os.environ.get("GATEWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
MUTATION = """mutation($i: RecordActivitiesInput!) { recordActivities(input: $i) {
  results { status pointsCredited } errors { code message } } }"""


async def setup(url: str) -> tuple[str, str]:
    await upgrade(url)
    db = Database(url)
    try:
        async with db.transaction() as session:
            operator = await partners.create_partner(
                session=session,
                code="bench-walk",
                name="Bench Walk",
                kind=PartnerKind.OPERATOR,
                unit_code="BWK",
                won_per_point=Decimal("1"),
            )
            client, secret = await create_client(
                session=session,
                partner=operator,
                scopes=["activity:write"],
                auth_method=ClientAuthMethod.CLIENT_SECRET_BASIC,
            )
            return client.client_id, secret
    finally:
        await db.dispose()


def batches(count: int, *, factor: float) -> list[list[dict]]:
    day = (dt.datetime.now(dt.timezone(dt.timedelta(hours=9))) - dt.timedelta(days=2)).date()
    if day.day == 11:
        day -= dt.timedelta(days=1)
    out = []
    for b in range(count):
        records = []
        for i in range(1000):
            steps = int((6000 + (i % 50) * 100) * factor)
            records.append(
                {
                    "memberExternalId": f"bench-{b:03d}-{i:04d}",
                    "date": day.isoformat(),
                    "steps": steps,
                    "distanceMeters": int(steps * 0.75),
                    "source": "bench",
                }
            )
        out.append(records)
    return out


def run_phase(client: httpx.Client, token: str, work: list[list[dict]], expect: str) -> tuple[float, list[float]]:
    latencies = []
    start = time.perf_counter()
    for records in work:
        t = time.perf_counter()
        response = client.post(
            "/graphql",
            json={"query": MUTATION, "variables": {"i": {"activities": records}}},
            headers={"Authorization": f"Bearer {token}"},
        )
        latencies.append(time.perf_counter() - t)
        body = response.json()["data"]["recordActivities"]
        statuses = {r["status"] for r in body["results"]}
        if body["errors"] or statuses != {expect}:
            raise RuntimeError(f"expected {expect}, got {statuses} {body['errors']}")
    return time.perf_counter() - start, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--no-docs", dest="docs", action="store_false")
    args = parser.parse_args()

    name = f"bench_activity_{uuid.uuid4().hex[:8]}"
    base_url = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base_url}/{name}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    process = None
    try:
        client_id, secret = asyncio.run(setup(url))
        log = Path(tempfile.mkstemp(suffix=".log")[1])
        process, base = start_gateway(url, log)
        with httpx.Client(base_url=base, timeout=300) as http:
            token = http.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
            ).json()["access_token"]
            rows = []
            for label, factor, expect in (
                ("new days", 1.0, "CREDITED"),
                ("resent", 1.0, "UNCHANGED"),
                ("corrected", 1.3, "ADJUSTED"),
            ):
                elapsed, latencies = run_phase(http, token, batches(args.batches, factor=factor), expect)
                rate = 1000 * args.batches / elapsed
                rows.append((label, expect, rate, statistics.median(latencies) * 1000, max(latencies) * 1000))
                print(
                    f"{label:<10} {expect:<9} {rate:8.0f} records/s  batch p50 {rows[-1][3]:.0f} ms  max {rows[-1][4]:.0f} ms"
                )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    if args.docs:
        load = os.getloadavg()[0]
        table = [
            "## Recording activity",
            "",
            "`recordActivities` in batches of 1,000 records over HTTP on PostgreSQL, one client, one gateway",
            "process (`bench/activity.py`; command and method in its docstring):",
            "",
            "```sh",
            f".venv/bin/python bench/activity.py --batches {args.batches}",
            "```",
            "",
            "| phase | every record | records/s | batch p50 | batch max |",
            "|---|---|---:|---:|---:|",
            *[f"| {r[0]} | {r[1]} | {r[2]:,.0f} | {r[3]:,.0f} ms | {r[4]:,.0f} ms |" for r in rows],
            "",
            f"Measured {dt.date.today().isoformat()} on the development machine (2 vCPU, load average {load:.1f} at the end of the run).",
            "",
            "Where the time goes: the service alone (`gateway.activity.record_activities`, no HTTP) plans a",
            "batch in memory and writes it with about fifteen bulk statements. On the same machine it",
            "credits 1,000 new days in about 0.8 s; a resent batch writes nothing but reads 1,000",
            "members, wallets and days back as ORM objects (about 0.3 s a read, 1.2 s in all), which",
            "is why UNCHANGED costs most of what CREDITED does. Loading those rows with Core selects instead",
            "of ORM objects is the next lever. Batches of one operator queue on its issuance",
            "account; batches of different operators, and several gateway processes (`--workers`),",
            "run in parallel.",
            "",
        ]
        path = ROOT / "docs" / "performance.md"
        text = path.read_text() if path.exists() else "# Performance\n\n"
        section = "\n".join(table)
        if "## Recording activity" in text:
            text = re.sub(r"## Recording activity\n.*?(?=\n## |\Z)", section.rstrip("\n") + "\n", text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        path.write_text(text)


if __name__ == "__main__":
    main()
