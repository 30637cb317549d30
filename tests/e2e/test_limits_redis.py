"""Issue 17, item 12: with GATEWAY_REDIS_URL the limits hold across worker processes.

Two real `mileage-gateway serve` processes (tests/e2e/test_concurrency_pg.py's `Servers`)
on one PostgreSQL database and the real Redis (GATEWAY_TEST_REDIS_URL, default
redis://127.0.0.1:6379/0), each test under a key prefix of its own, removed afterwards.
Under CI (CI=true) a Redis that cannot be reached fails these tests; elsewhere they skip.
Without Redis the same two processes each admit the whole limit: that is why replicas need it.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
import uuid

import httpx
import pytest

from gateway.metrics import REGISTRY
from tests.conftest import _start_on
from tests.e2e.test_concurrency_pg import Servers
from tests.support.auth import get_token, post_graphql, register_partner

VIEWER = "{ viewer { clientId } }"


@pytest.fixture
def redis_prefix(redis_url):
    """A key prefix of this test's own, in a Redis database of its own (`redis_url`,
    tests/conftest.py: skipped without Redis, failed under CI, emptied afterwards)."""
    return f"gw-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def two_workers(settings, database_url, tmp_path):
    """start(**env) -> two gateway processes on this test's database with that environment."""
    if settings.is_sqlite:
        pytest.skip("several gateway processes on one database: PostgreSQL only")
    started: list[Servers] = []

    def start(**env: str) -> Servers:
        servers = Servers(database_url)
        servers.env.update(env)
        started.append(servers)
        return servers.start(tmp_path)

    yield start
    for servers in started:
        servers.stop()


def _limits(**values) -> dict[str, str]:
    return {f"GATEWAY_{name.upper()}": str(value) for name, value in values.items()}


async def _client(db, url: str) -> tuple[str, str, str]:
    reg = await register_partner(
        db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point=1
    )
    return reg.client_id, reg.client_secret, get_token(url, reg.client_id, reg.client_secret)


def _alternate(servers: Servers, token: str, count: int) -> list[httpx.Response]:
    return [post_graphql(servers.urls[i % 2], token, VIEWER) for i in range(count)]


# A burst of 3 and one new token every 100 s: nothing refills during a test.
BUCKET = _limits(rate_per_second=0.01, rate_burst=3, max_concurrent=100)


async def test_two_workers_with_redis_admit_a_clients_burst_once_in_total(db, two_workers, redis_url, redis_prefix):
    servers = two_workers(GATEWAY_REDIS_URL=redis_url, GATEWAY_REDIS_KEY_PREFIX=redis_prefix, **BUCKET)
    _, _, token = await _client(db, servers.urls[0])

    answers = _alternate(servers, token, 8)

    assert sorted(r.status_code for r in answers) == [200] * 3 + [429] * 5, servers.output()
    for refused in (r for r in answers if r.status_code == 429):
        assert refused.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
        assert 1 <= int(refused.headers["retry-after"]) <= 100
    # Both processes refuse once the shared bucket is empty.
    assert {
        servers.urls.index(str(r.request.url).removesuffix("/graphql")) for r in answers if r.status_code == 429
    } == {0, 1}


async def test_two_workers_without_redis_each_admit_the_whole_burst(db, two_workers):
    """The limitation documented in docs/operations.md: without Redis, N processes admit N bursts."""
    servers = two_workers(**BUCKET)
    _, _, token = await _client(db, servers.urls[0])

    answers = _alternate(servers, token, 8)

    assert sorted(r.status_code for r in answers) == [200] * 6 + [429] * 2


async def test_the_concurrency_cap_is_shared_and_a_dead_workers_slot_expires(db, two_workers, redis_url, redis_prefix):
    servers = two_workers(
        GATEWAY_REDIS_URL=redis_url,
        GATEWAY_REDIS_KEY_PREFIX=redis_prefix,
        GATEWAY_CONCURRENCY_SLOT_TTL_SECONDS="4",
        **_limits(rate_per_second=1000, rate_burst=1000, max_concurrent=1),
    )
    client_id, _, token = await _client(db, servers.urls[0])
    release = threading.Event()

    def trickle():  # holds its slot on worker 0 while the body trickles in
        yield b'{"query": "{ viewer '
        release.wait(30)
        yield b'{ clientId } }"}'

    holder = threading.Thread(
        target=lambda: _swallow(
            lambda: httpx.post(
                servers.urls[0] + "/graphql",
                content=trickle(),
                timeout=60,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        ),
        daemon=True,
    )
    holder.start()
    try:
        deadline = time.monotonic() + 10  # until worker 0 has taken the slot, worker 1 may answer
        while (second := post_graphql(servers.urls[1], token, VIEWER)).status_code == 200:
            assert time.monotonic() < deadline, "worker 1 never saw worker 0's request in flight"
            time.sleep(0.05)
        assert second.status_code == 429, second.text
        assert second.headers["retry-after"] == "1"
        assert second.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"

        # Worker 0 dies mid-request (SIGKILL: no cleanup). Its slot stays taken...
        servers.processes[0].kill()
        servers.processes[0].wait(10)
        killed_at = time.monotonic()
        assert post_graphql(servers.urls[1], token, VIEWER).status_code == 429
        # ...until it expires (4 s here), not forever.
        while (after := post_graphql(servers.urls[1], token, VIEWER)).status_code == 429:
            assert time.monotonic() - killed_at < 15, "the dead worker's slot never expired"
            time.sleep(0.2)
        assert after.status_code == 200 and after.json()["data"]["viewer"]["clientId"] == client_id
    finally:
        release.set()
        holder.join(10)


async def test_failed_authentications_are_counted_across_workers(db, two_workers, redis_url, redis_prefix):
    servers = two_workers(GATEWAY_REDIS_URL=redis_url, GATEWAY_REDIS_KEY_PREFIX=redis_prefix)
    reg = await register_partner(
        db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point=1
    )

    def token_at(i: int, secret: str) -> httpx.Response:
        return httpx.post(
            servers.urls[i % 2] + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(reg.client_id, secret),
            timeout=30,
        )

    failures = [token_at(i, "cs_guess").status_code for i in range(5)]  # 3 on worker 0, 2 on worker 1

    assert failures == [401] * 5
    assert token_at(0, reg.client_secret).status_code == 429
    assert token_at(1, reg.client_secret).status_code == 429


# ---------------------------------------------------------------- Redis unreachable


@pytest.fixture
def silent_redis():
    """A Redis address that accepts connections and never answers (a network partition)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    sock.close()


@pytest.fixture
def server_with_silent_redis(settings, silent_redis):
    """The gateway served like `live_server`, its counters in a Redis that never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    issuer = f"http://127.0.0.1:{port}"
    served = dataclasses.replace(
        settings,
        issuer=issuer,
        audience=f"{issuer}/graphql",
        redis_url=silent_redis,
        rate_per_second=0.01,
        rate_burst=3,
    )
    server = _start_on(served, port)
    yield server
    server.stop()


async def test_an_unreachable_redis_falls_back_to_this_processs_limits(db, server_with_silent_redis, caplog):
    """Fail open to the in-process counters (docs/operations.md): requests are served, the
    limits still hold per process, a warning is logged and counted in /metrics."""
    server = server_with_silent_redis
    caplog.set_level(logging.WARNING, logger="gateway.limits_storage")
    before = _locally_decided("graphql")
    _, _, token = await _client(db, server.url)

    started = time.monotonic()
    answers = [post_graphql(server.url, token, VIEWER) for _ in range(4)]
    elapsed = time.monotonic() - started

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert elapsed < 3, f"a silent Redis stalled requests for {elapsed:.1f} s"
    assert any("Redis unreachable" in r.getMessage() for r in caplog.records)
    assert _locally_decided("graphql") - before >= 4


def _locally_decided(limiter: str) -> float:
    """The served metric (this process's registry: the server runs in a thread of the test)."""
    return REGISTRY.get_sample_value("gateway_limits_store_unavailable_total", {"limiter": limiter}) or 0.0


def _swallow(call) -> None:
    try:
        call()
    except httpx.HTTPError:
        pass  # the worker it talks to is killed mid-request
