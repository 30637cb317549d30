"""Run GraphQL operations in-process with a given principal (for service-level schema tests).

End-to-end tests go over HTTP with real tokens instead (tests/support/auth.py).
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from auth.principal import Principal
from gateway import composition
from gateway.db import Database
from gateway.settings import Settings
from schema import build_schema
from schema.context import Context

_schema = None


def principal(partner_id: int, code: str, kind: str, *scopes: str) -> Principal:
    return Principal(
        client_id=f"test-{code}",
        partner_id=partner_id,
        partner_code=code,
        partner_kind=kind,
        scopes=frozenset(scopes or (["admin"] if kind == "ADMIN" else [])),
        jti="test",
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
    )


async def execute(db: Database, settings: Settings, who: Principal, query: str, variables: dict | None = None):
    global _schema
    if _schema is None:
        _schema = build_schema()
    state = SimpleNamespace(settings=settings, db=db)
    composition.wire_connectors(state)  # as create_app does
    ctx = Context(request=None, response=None, db=db, settings=settings, principal=who, state=state)
    try:
        return await _schema.execute(query, variable_values=variables, context_value=ctx)
    finally:
        await ctx.close()
