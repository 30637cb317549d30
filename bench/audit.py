"""Benchmark: mutations from two gateway processes at once, with the audit log (PostgreSQL).

    .venv/bin/python bench/audit.py                               # this tree's gateway
    .venv/bin/python bench/audit.py --gateway-root /path/to/other/checkout   # e.g. the code before

A scratch database on $GATEWAY_TEST_PG_DSN (default postgresql://postgres@127.0.0.1:5432/postgres)
is created, migrated by the gateway under test and dropped afterwards. Two `mileage-gateway
serve` processes of that gateway (scheduler off, rate limits lifted) serve it; one ADMIN
client sends `--mutations` `createPartner` mutations, `--concurrency` at a time, alternating
between the processes. Each mutation is one small transaction plus its audit event, so the
audit log's share of the cost shows. Prints mutations per second and client-side latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from support import free_port, serve  # noqa: E402  (bench/support.py)

PG_ADMIN_DSN = os.environ.get("GATEWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-key-" + uuid.uuid4().hex
CREATE = 'mutation($code: String!) { createPartner(input: {code: $code, name: "Sponsor", kind: SPONSOR}) { errors { code } } }'


def _env(root: Path, url: str, issuer: str) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(root),
        "GATEWAY_DATABASE_URL": url,
        "GATEWAY_SECRET_KEY": SECRET,
        "GATEWAY_ENV": "development",
        "GATEWAY_ISSUER": issuer,
        "GATEWAY_AUDIENCE": f"{issuer}/graphql",
        "GATEWAY_SCHEDULER": "0",
        "GATEWAY_RATE_PER_SECOND": "1000000",
        "GATEWAY_RATE_BURST": "1000000",
        "GATEWAY_MAX_CONCURRENT": "100000",
    }


def _cli(root: Path, env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout


async def _send(urls: list[str], token: str, n: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = iter(range(n))
    async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:

        async def worker() -> None:
            for i in queue:
                started = time.perf_counter()
                response = await http.post(
                    urls[i % 2] + "/graphql",
                    json={"query": CREATE, "variables": {"code": f"s-{i}-{uuid.uuid4().hex[:6]}"}},
                )
                assert response.json()["data"]["createPartner"]["errors"] == [], response.text
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def main(root: Path, mutations: int, concurrency: int) -> None:
    name = f"bench_audit_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    env = _env(root, url, urls[0])
    processes = []
    try:
        _cli(root, env, "migrate")
        client = json.loads(_cli(root, env, "create-admin-client", "--json", "--no-migrate"))
        with tempfile.TemporaryDirectory() as logs:
            for port in ports:  # one after the other: the first creates the signing keys
                processes.append(serve(env, port, Path(logs) / f"{port}.log", cwd=root))
            token = httpx.post(
                urls[0] + "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(client["client_id"], client["client_secret"]),
                timeout=30,
            ).json()["access_token"]
            await _send(urls, token, 20, concurrency)  # warm-up
            elapsed, latencies = await _send(urls, token, mutations, concurrency)
        latencies.sort()
        print(
            json.dumps(
                {
                    "gateway": str(root),
                    "mutations": mutations,
                    "concurrency": concurrency,
                    "per_second": round(mutations / elapsed, 1),
                    "p50_ms": round(statistics.median(latencies) * 1000, 1),
                    "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
                    "load_average": os.getloadavg()[0],
                }
            )
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gateway-root", type=Path, default=ROOT, help="checkout whose gateway to run (default: this one)"
    )
    parser.add_argument("--mutations", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.gateway_root.resolve(), args.mutations, args.concurrency))
