"""Mutations on two real gateway processes do not queue behind one audit lock, and the
sealer chains what they recorded into one chain that verifies (PostgreSQL only: SQLite
runs one write transaction at a time by design)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa

from gateway import audit
from gateway.db import Database
from gateway.models import AuditEvent
from tests.e2e.test_concurrency_pg import Servers
from tests.support.auth import get_token, register_partner

CREATE = 'mutation($code: String!) { createPartner(input: {code: $code, name: "A Sponsor", kind: SPONSOR}) { partner { code } errors { code } } }'


@pytest.fixture
def servers(settings, database_url, tmp_path):
    if settings.is_sqlite:
        pytest.skip("several gateway processes on one database: PostgreSQL only")
    running = Servers(database_url).start(tmp_path)
    yield running
    running.stop()


async def test_mutations_from_two_processes_run_while_the_chain_head_is_locked(db, servers, database_url):
    """A sealing run holds the chain head (its lock and row) for the whole test; twenty
    mutations spread over two processes still commit at once, each with its event."""
    admin = await register_partner(db, code="program-office", kind="ADMIN", scopes=["admin"])
    token = get_token(servers.urls[0], admin.client_id, admin.client_secret)
    sealer = Database(database_url)
    try:
        async with sealer.transaction() as session:
            assert await audit.seal_batch(session) == 0  # holds the head's lock until this block ends
            async with httpx.AsyncClient(timeout=20, headers={"Authorization": f"Bearer {token}"}) as http:
                responses = await asyncio.gather(
                    *(
                        http.post(
                            servers.urls[i % 2] + "/graphql",
                            json={"query": CREATE, "variables": {"code": f"sponsor-{i}"}},
                        )
                        for i in range(20)
                    )
                )
            assert [r.json()["data"]["createPartner"]["errors"] for r in responses] == [[]] * 20, servers.output()
            async with db.session() as reader:
                pending = await reader.scalar(
                    sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
                )
            assert pending == 20  # committed and audited while the head stayed locked
    finally:
        await sealer.dispose()

    assert await audit.seal(db) == 20
    async with db.session() as session:
        assert await audit.verify(session) == (True, None)
        rows = (await session.execute(sa.select(AuditEvent.operation, AuditEvent.outcome, AuditEvent.seq))).all()
    assert sorted(seq for _, _, seq in rows) == list(range(1, 21))
    assert {(op, outcome) for op, outcome, _ in rows} == {("createPartner", "OK")}
