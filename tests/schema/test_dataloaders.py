"""List queries load related rows in batches: the SQL count does not grow with the rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import event

from gateway import partners as partner_service
from gateway.bootstrap import ensure_admin_partner
from gateway.models import PartnerKind, SettlementPeriod
from tests.support.schema import execute, principal


class StatementCounter:
    def __init__(self, db) -> None:
        self.engine = db.engine.sync_engine
        self.count = 0

    def _hit(self, *args, **kwargs) -> None:
        self.count += 1

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._hit)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._hit)


async def _world(db, operators: int) -> int:
    """`operators` operators, each with two merchants, chained by agreements."""
    async with db.transaction() as session:
        admin = await ensure_admin_partner(session)
        for i in range(operators):
            await partner_service.create_partner(
                session=session,
                code=f"op-{i}",
                name=f"Operator {i}",
                kind=PartnerKind.OPERATOR,
                unit_code=f"U{i}",
                won_per_point=Decimal("1"),
            )
            for m in range(2):
                await partner_service.create_partner(
                    session=session,
                    code=f"shop-{i}-{m}",
                    name=f"Shop {i}-{m}",
                    kind=PartnerKind.MERCHANT,
                    operator_code=f"op-{i}",
                )
        for i in range(operators - 1):
            await partner_service.create_agreement(
                session=session,
                code=f"ag-{i}",
                operator_a_code=f"op-{i}",
                operator_b_code=f"op-{i + 1}",
                cross_redemption=True,
                point_exchange=True,
                fee_bps=100,
                settlement_period=SettlementPeriod.MONTHLY,
                starts_on=dt.date(2026, 1, 1),
            )
        return admin.id


PARTNERS = "{ partners(first: 500) { edges { node { code operator { code unit { code } } } } } }"
AGREEMENTS = "{ agreements { code operatorA { code } operatorB { code name } } }"


async def _count(db, settings, admin_id, query) -> tuple[int, dict]:
    who = principal(admin_id, "program-office", "ADMIN")
    with StatementCounter(db) as counter:
        result = await execute(db, settings, who, query)
    assert result.errors is None, result.errors
    return counter.count, result.data


async def test_partner_list_loads_affiliated_operators_in_one_batch(db, settings):
    admin_id = await _world(db, 3)
    small, data = await _count(db, settings, admin_id, PARTNERS)
    assert len(data["partners"]["edges"]) == 1 + 3 * 3

    await _grow(db, from_index=3, to_index=12)
    large, data = await _count(db, settings, admin_id, PARTNERS)
    assert len(data["partners"]["edges"]) == 1 + 12 * 3
    merchants = [e["node"] for e in data["partners"]["edges"] if e["node"]["code"].startswith("shop-")]
    assert all(m["operator"]["code"].startswith("op-") for m in merchants)
    assert 0 < large == small


async def test_agreement_list_loads_both_operators_in_one_batch(db, settings):
    admin_id = await _world(db, 3)
    small, data = await _count(db, settings, admin_id, AGREEMENTS)
    assert [a["code"] for a in data["agreements"]] == ["ag-0", "ag-1"]
    await _grow(db, from_index=3, to_index=15)
    large, data = await _count(db, settings, admin_id, AGREEMENTS)
    assert len(data["agreements"]) == 14
    assert data["agreements"][5]["operatorB"]["code"] == "op-6"
    assert 0 < large == small


async def _grow(db, *, from_index: int, to_index: int) -> None:
    async with db.transaction() as session:
        for i in range(from_index, to_index):
            await partner_service.create_partner(
                session=session,
                code=f"op-{i}",
                name=f"Operator {i}",
                kind=PartnerKind.OPERATOR,
                unit_code=f"U{i}",
                won_per_point=Decimal("1"),
            )
            for m in range(2):
                await partner_service.create_partner(
                    session=session,
                    code=f"shop-{i}-{m}",
                    name=f"Shop {i}-{m}",
                    kind=PartnerKind.MERCHANT,
                    operator_code=f"op-{i}",
                )
            await partner_service.create_agreement(
                session=session,
                code=f"ag-{i - 1}",
                operator_a_code=f"op-{i - 1}",
                operator_b_code=f"op-{i}",
                cross_redemption=True,
                point_exchange=False,
                fee_bps=0,
                settlement_period=SettlementPeriod.DAILY,
                starts_on=dt.date(2026, 1, 1),
            )
