"""A mutation's audit event is written in the mutation's own transaction: a mutation that
commits is audited even if nothing runs after it (the process dies right after commit),
one that rolls back leaves no "OK" event, and the AuditLog extension adds refusals
without writing a committed mutation's event twice."""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa
from strawberry.tools import merge_types

from gateway import audit
from gateway.bootstrap import ensure_admin_partner
from gateway.models import AuditEvent, Partner
from schema import MUTATIONS, QUERIES
from schema.context import Context
from schema.extensions import GatewaySchema
from tests.support.schema import execute, principal

CREATE = 'mutation { createPartner(input: {code: "%s", name: "A Sponsor", kind: SPONSOR}) { partner { code } errors { code } } }'


async def _admin(db):
    async with db.transaction() as session:
        partner = await ensure_admin_partner(session)
        return principal(partner.id, partner.code, "ADMIN")


async def _events(db) -> list[tuple]:
    async with db.session() as session:
        rows = (await session.execute(sa.select(AuditEvent).order_by(AuditEvent.id))).scalars().all()
        return [(e.client_id, e.operation, e.outcome, e.seq) for e in rows]


async def _partners(db, code: str) -> int:
    async with db.session() as session:
        return await session.scalar(sa.select(sa.func.count()).select_from(Partner).where(Partner.code == code))


async def test_a_committed_mutation_is_audited_with_no_hook_after_it(db, settings):
    """No extension at all runs here (as if the process died right after the commit)."""
    admin = await _admin(db)
    bare = GatewaySchema(query=merge_types("Query", QUERIES), mutation=merge_types("Mutation", MUTATIONS))

    async def run(query: str):
        ctx = Context(
            request=None,
            response=None,
            db=db,
            settings=settings,
            principal=admin,
            state=SimpleNamespace(settings=settings, db=db),
        )
        try:
            return await bare.execute(query, context_value=ctx)
        finally:
            await ctx.close()

    done = await run(CREATE % "walk-sponsor")
    assert done.data["createPartner"] == {"partner": {"code": "walk-sponsor"}, "errors": []}
    assert await _events(db) == [(admin.client_id, "createPartner", "OK", None)]

    # The same code again is refused and rolls back: no partner, and no "OK" event.
    refused = await run(CREATE % "walk-sponsor")
    assert refused.data["createPartner"]["errors"]
    assert await _partners(db, "walk-sponsor") == 1
    assert await _events(db) == [(admin.client_id, "createPartner", "OK", None)]

    assert await audit.seal(db) == 1
    assert await _events(db) == [(admin.client_id, "createPartner", "OK", 1)]


async def test_the_audit_log_extension_adds_refusals_and_never_a_second_ok(db, settings):
    admin = await _admin(db)
    assert not (await execute(db, settings, admin, CREATE % "walk-sponsor")).errors
    refused = await execute(db, settings, admin, CREATE % "walk-sponsor")
    code = refused.data["createPartner"]["errors"][0]["code"]
    two = await execute(db, settings, admin, CREATE.replace("mutation {", "mutation { a: ") % "other-sponsor")
    assert not two.errors

    assert [(op, outcome) for _, op, outcome, _ in await _events(db)] == [
        ("createPartner", "OK"),
        ("createPartner", code),
        ("createPartner", "OK"),
    ]


async def test_an_event_recorded_in_a_transaction_that_rolls_back_is_gone(db):
    admin = await _admin(db)
    try:
        async with db.transaction() as session:
            await audit.record(
                session=session,
                client_id=admin.client_id,
                partner_id=admin.partner_id,
                operation="createPartner",
                outcome="OK",
            )
            raise RuntimeError("the mutation failed after its event was written")
    except RuntimeError:
        pass
    assert await _events(db) == []
