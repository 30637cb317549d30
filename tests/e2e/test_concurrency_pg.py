"""No double spend under concurrency: two real gateway processes on one PostgreSQL database.

Each test starts two `mileage-gateway serve --no-migrate` subprocesses on free ports against
the test's fresh PostgreSQL database, with the same secret key, issuer and audience, so one
access token works on both. The requests are split across the two servers and sent at once.
SQLite serializes writers and has one process, so these tests run on PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.members import balance, get_member
from tests.e2e.checkout_world import AUTHORIZE, CAPTURE, VOID, codes_in_db, credit
from tests.gateway.factories import check_invariants
from tests.support.auth import get_token, register_partner

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-secret-key-not-for-production"  # the `settings` fixture's, so both servers decrypt the same keys


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Servers:
    """Two gateway processes; `urls[0]` is also the issuer both accept."""

    def __init__(self, database_url: str) -> None:
        self.ports = [_free_port(), _free_port()]
        self.urls = [f"http://127.0.0.1:{p}" for p in self.ports]
        issuer = self.urls[0]
        self.env = {
            **os.environ,
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_SECRET_KEY": SECRET,
            "GATEWAY_ISSUER": issuer,
            "GATEWAY_AUDIENCE": f"{issuer}/graphql",
            "GATEWAY_ENV": "development",
            "GATEWAY_SCHEDULER": "0",
            # The test itself is one client sending 100 requests at once.
            "GATEWAY_RATE_PER_SECOND": "100000",
            "GATEWAY_RATE_BURST": "100000",
            "GATEWAY_MAX_CONCURRENT": "100000",
        }
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, log_dir: Path) -> Servers:
        # One after the other: the first creates the signing keys, the second finds them.
        for port, url in zip(self.ports, self.urls):
            log = log_dir / f"gateway-{port}.log"
            with open(log, "wb") as sink:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gateway.cli",
                        "serve",
                        "--no-migrate",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                    env=self.env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            self.processes.append(process)
            self.logs.append(log)
            self._wait_ready(process, url, log)
        return self

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for log in self.logs)

    @staticmethod
    def _wait_ready(process: subprocess.Popen, url: str, log: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gateway at {url} did not become ready")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def servers(settings, database_url, tmp_path):
    if settings.is_sqlite:
        pytest.skip("several gateway processes on one database: PostgreSQL only")
    running = Servers(database_url).start(tmp_path)
    yield running
    running.stop()


@pytest.fixture
async def shop(db, servers):
    """An operator, a merchant with a token valid on both servers, and the operator's id."""
    op = await register_partner(
        db, code="seoul-walking", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point="1"
    )
    shop = await register_partner(
        db,
        code="mangwon-bakery",
        kind="MERCHANT",
        scopes=["redemptions:write", "redemptions:read"],
        operator_code="seoul-walking",
    )
    token = get_token(servers.urls[0], shop.client_id, shop.client_secret)
    return op.partner_id, token


async def _post_all(servers: Servers, token: str, operations: list[tuple[str, dict]]) -> list[dict]:
    """POST every (query, variables) at once, alternating between the two servers."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=len(operations) + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=headers) as http:

        async def one(i: int, query: str, variables: dict) -> dict:
            response = await http.post(servers.urls[i % 2] + "/graphql", json={"query": query, "variables": variables})
            assert response.status_code == 200, f"{response.status_code} {response.text}\n{servers.output()}"
            body = response.json()
            assert not body.get("errors"), body["errors"]
            return body["data"]

        return await asyncio.gather(*(one(i, q, v) for i, (q, v) in enumerate(operations)))


async def _wallet(db, operator_id: int, external_id: str) -> tuple[int, int]:
    async with db.session() as session:
        b = await balance(session, await get_member(session, operator_id, external_id))
        return b.available, b.held


def _pay(code: str, amount: int, i: int, capture: bool) -> tuple[str, dict]:
    return AUTHORIZE, {
        "input": {
            "memberCode": code,
            "amountWon": str(amount),
            "orderId": f"C-{i}",
            "idempotencyKey": f"pay-{i}",
            "capture": capture,
        }
    }


async def test_a_hundred_concurrent_spends_from_a_wallet_good_for_ten(db, servers, shop):
    operator_id, token = shop
    await credit(db, operator_id, "kim", 1_000)
    codes = await codes_in_db(db, operator_id, "kim", 100)
    results = await _post_all(servers, token, [_pay(code, 100, i, capture=True) for i, code in enumerate(codes)])
    payloads = [r["authorizeRedemption"] for r in results]
    succeeded = [p for p in payloads if not p["errors"]]
    assert len(succeeded) == 10
    assert all(p["redemption"]["status"] == "CAPTURED" for p in succeeded)
    assert {e["code"] for p in payloads if p["errors"] for e in p["errors"]} == {"INSUFFICIENT_POINTS"}
    assert await _wallet(db, operator_id, "kim") == (0, 0)
    async with db.session() as session:
        await check_invariants(session)


async def test_forty_concurrent_authorizations_hold_exactly_what_the_wallet_has(db, servers, shop):
    operator_id, token = shop
    await credit(db, operator_id, "lee", 1_000)
    codes = await codes_in_db(db, operator_id, "lee", 40)
    results = await _post_all(servers, token, [_pay(code, 100, i, capture=False) for i, code in enumerate(codes)])
    held = [r["authorizeRedemption"]["redemption"] for r in results if not r["authorizeRedemption"]["errors"]]
    assert len(held) == 10 and all(r["status"] == "AUTHORIZED" for r in held)
    available, on_hold = await _wallet(db, operator_id, "lee")
    assert (available, on_hold) == (0, sum(int(r["points"]) for r in held)) == (0, 1_000)
    async with db.session() as session:
        await check_invariants(session)


async def test_concurrent_capture_and_void_of_one_redemption_exactly_one_wins(db, servers, shop):
    operator_id, token = shop
    rounds = 10
    await credit(db, operator_id, "park", 100 * rounds)
    codes = await codes_in_db(db, operator_id, "park", rounds)
    authorized = await _post_all(servers, token, [_pay(code, 100, i, capture=False) for i, code in enumerate(codes)])
    ids = [r["authorizeRedemption"]["redemption"]["id"] for r in authorized]
    # For each redemption, a capture on one server and a void on the other, all at once.
    operations = []
    for i, rid in enumerate(ids):
        capture = (CAPTURE, {"input": {"redemptionId": rid, "idempotencyKey": f"capture-{i}"}})
        void = (VOID, {"input": {"redemptionId": rid, "idempotencyKey": f"void-{i}"}})
        operations += [capture, void] if i % 2 == 0 else [void, capture]
    results = await _post_all(servers, token, operations)
    captured = voided = 0
    for i in range(rounds):
        pair = [next(iter(r.values())) for r in results[2 * i : 2 * i + 2]]
        winners = [p for p in pair if not p["errors"]]
        losers = [p for p in pair if p["errors"]]
        assert len(winners) == 1 and [e["code"] for e in losers[0]["errors"]] == ["INVALID_STATE"], pair
        status = winners[0]["redemption"]["status"]
        captured += status == "CAPTURED"
        voided += status == "VOIDED"
    assert captured + voided == rounds
    # Captured ones took their 100 points; voided ones gave them back; nothing is left held.
    assert await _wallet(db, operator_id, "park") == (100 * voided, 0)
    async with db.session() as session:
        await check_invariants(session)
