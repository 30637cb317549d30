"""Tenancy of every `Node`: its owner reads it; anyone else gets exactly the answer an unknown id gets.

One row per type that implements `Node` in the built schema (a new Node type without a row
fails `test_every_node_type_has_a_row`). For each row the owners read the object through
`node(id:)` and the typed query; every outsider (another tenant of the same kind, another
program's operator, a partner of another kind) gets the whole response (data and errors) it
would get for an id that does not exist, with the id swapped. Mutations that take an id
answer an outsider as for an unknown id and change nothing; the owner's call then works,
so the id was live.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest
import sqlalchemy as sa

from auth.keys import KeyStore
from gateway import reconciliation
from gateway import redemption as redemption_service
from gateway import settlement as settlement_service
from gateway.codes import issue_member_code
from gateway.db import utcnow
from gateway.ids import encode_id
from gateway.models import (
    Account,
    Discrepancy,
    DiscrepancyKind,
    Exchange,
    FlowKind,
    LedgerEntry,
    MemberCodePurpose,
    OwnerKind,
    PartnerKind,
    Redemption,
    Settlement,
    SettlementResponse,
)
from gateway.models.campaigns import Campaign, Donation
from schema import build_schema
from tests.gateway import factories as f
from tests.support.schema import execute, principal

#: Every scope, so that only tenancy (and partner kind) decides what a caller gets.
SCOPES = (
    "members:read",
    "redemptions:read",
    "redemptions:write",
    "settlements:read",
    "settlements:write",
    "donations:read",
    "donations:write",
    "campaigns:write",
    "exchange:write",
    "statements:read",
)
UNKNOWN_PK = 987_654_321
UNKNOWN_KEY = "no-such-key"


class World:
    """Three operators (a and b in an agreement, c in none), merchants of a and c, two
    sponsors, two beneficiaries, member kim of a with points and lee of b."""

    async def build(self, db) -> World:
        async with db.transaction() as s:
            self.op_a, self.op_b, self.op_c = await f.operator(s), await f.operator(s), await f.operator(s)
            self.agreement = await f.agreement(s, self.op_a, self.op_b)
            self.shop_a = await f.partner(s, PartnerKind.MERCHANT, operator_id=self.op_a.id)
            self.shop_c = await f.partner(s, PartnerKind.MERCHANT, operator_id=self.op_c.id)
            self.sponsor_1, self.sponsor_2 = (
                await f.partner(s, PartnerKind.SPONSOR),
                await f.partner(s, PartnerKind.SPONSOR),
            )
            self.charity_1 = await f.partner(s, PartnerKind.BENEFICIARY)
            self.charity_2 = await f.partner(s, PartnerKind.BENEFICIARY)
            self.kim = await f.member(s, self.op_a)
            self.lee = await f.member(s, self.op_b)
            await f.earn(s, self.kim, 100_000)
        return self

    def who(self, name: str):
        p = getattr(self, name)
        return principal(p.id, p.code, p.kind.value, *SCOPES)


# ---------------------------------------------------------------- builders: (pk, typed-query key)


async def _partner(db, w: World):
    return w.op_b.id, w.op_b.code


async def _agreement(db, w: World):
    return w.agreement.id, None


async def _member(db, w: World):
    return w.kim.id, w.kim.external_id


async def _ledger_entry(db, w: World):
    async with db.session() as s:
        wallet = (
            await s.execute(
                sa.select(Account).where(Account.owner_kind == OwnerKind.MEMBER, Account.owner_id == w.kim.id)
            )
        ).scalar_one()
        entry = (await s.execute(sa.select(LedgerEntry).where(LedgerEntry.account_id == wallet.id))).scalars().first()
    return entry.id, None


async def _redemption(db, w: World, *, capture: bool = False):
    async with db.transaction() as s:
        code = await issue_member_code(
            session=s,
            operator_id=w.op_a.id,
            external_id=w.kim.external_id,
            purpose=MemberCodePurpose.PAYMENT,
            now=utcnow(),
        )
        r = await redemption_service.authorize(
            session=s,
            merchant_id=w.shop_a.id,
            code=code.code,
            amount_won=500,
            order_id="order-1",
            idempotency_key="auth-1",
            capture=capture,
            now=utcnow(),
        )
    return r.id, None


async def _captured_redemption(db, w: World):
    return await _redemption(db, w, capture=True)


async def _settlement(db, w: World):
    signer = KeyStore(db=db, settings=w.settings)
    await signer.ensure_keys()
    async with db.transaction() as s:
        row = await settlement_service.close_settlement(
            session=s, agreement_id=w.agreement.id, period_end=dt.date(2024, 1, 31), signer=signer
        )
    w.digest = row.digest
    return row.id, None


async def _run(db, w: World):
    async with db.transaction() as s:
        run = await reconciliation.create_run(
            session=s,
            agreement_id=w.agreement.id,
            partner_id=w.op_a.id,
            period_start=dt.date(2024, 1, 1),
            period_end=dt.date(2024, 1, 31),
        )
    return run.id, None


async def _discrepancy(db, w: World):
    run_id, _ = await _run(db, w)
    async with db.transaction() as s:
        row = Discrepancy(
            run_id=run_id,
            reference="r-1",
            kind=DiscrepancyKind.MISSING_IN_GATEWAY,
            flow_kind=FlowKind.CROSS_REDEMPTION,
            partner_amount_won=500,
        )
        s.add(row)
        await s.flush()
    return row.id, None


async def _campaign(db, w: World):
    async with db.transaction() as s:
        row = Campaign(
            code="spring-walk",
            name="Spring walk",
            sponsor_id=w.sponsor_1.id,
            beneficiary_id=w.charity_1.id,
            starts_on=dt.date(2025, 3, 1),
            ends_on=dt.date(2025, 3, 31),
            won_per_km=100,
            goal_steps=None,
            won_per_achiever=0,
            match_ratio=Decimal(1),
            budget_won=1_000_000,
        )
        s.add(row)
        await s.flush()
    w.campaign = row
    return row.id, row.code


async def _donation(db, w: World):
    await _campaign(db, w)
    async with db.transaction() as s:
        row = Donation(
            reference="don-1",
            operator_id=w.op_a.id,
            member_id=w.kim.id,
            beneficiary_id=w.charity_1.id,
            campaign_id=w.campaign.id,
            points=10,
            unit=w.op_a.unit_code,
            won_value=10,
        )
        s.add(row)
        await s.flush()
    return row.id, None


async def _exchange(db, w: World):
    async with db.transaction() as s:
        row = Exchange(
            reference="ex-1",
            agreement_id=w.agreement.id,
            from_operator_id=w.op_a.id,
            to_operator_id=w.op_b.id,
            from_member_id=w.kim.id,
            to_member_id=w.lee.id,
            from_points=100,
            from_unit=w.op_a.unit_code,
            to_points=99,
            to_unit=w.op_b.unit_code,
            won_value=100,
            fee_won=1,
        )
        s.add(row)
        await s.flush()
    return row.id, None


# ---------------------------------------------------------------- the table


@dataclasses.dataclass(frozen=True)
class Row:
    build: Callable[..., Awaitable[tuple[int, str | None]]]
    owners: tuple[str, ...]
    outsiders: tuple[str, ...]
    #: The typed query, `$v` its argument (the id, or the code/external id the builder returns).
    typed: str | None = None
    typed_var: str = "ID!"
    #: The partner directory: every partner reads every partner (no tenant data in it).
    public: bool = False


OTHERS = ("op_c", "shop_a", "sponsor_1")  # another program's operator, the party's own merchant, another kind
ROWS: dict[str, Row] = {
    "Partner": Row(
        _partner,
        ("op_a",),
        ("op_c", "shop_c", "sponsor_2", "charity_2"),
        typed="partner(code: $v) { id }",
        typed_var="String!",
        public=True,
    ),
    "Agreement": Row(_agreement, ("op_a", "op_b"), OTHERS + ("charity_1",)),
    "Member": Row(
        _member,
        ("op_a",),
        ("op_b", "op_c", "shop_a", "sponsor_1"),
        typed="member(externalId: $v) { id }",
        typed_var="String!",
    ),
    "LedgerEntry": Row(_ledger_entry, ("op_a",), ("op_b", "op_c", "shop_a", "sponsor_1")),
    "Redemption": Row(
        _redemption, ("shop_a", "op_a"), ("shop_c", "op_b", "op_c", "sponsor_1"), typed="redemption(id: $v) { id }"
    ),
    "Settlement": Row(_settlement, ("op_a", "op_b"), OTHERS, typed="settlement(id: $v) { id }"),
    "ReconciliationRun": Row(_run, ("op_a", "op_b"), OTHERS, typed="reconciliationRun(id: $v) { id }"),
    "Discrepancy": Row(_discrepancy, ("op_a", "op_b"), OTHERS),
    "Campaign": Row(
        _campaign,
        ("sponsor_1", "charity_1", "op_a"),
        ("sponsor_2", "charity_2", "shop_a"),
        typed="campaign(code: $v) { id }",
        typed_var="String!",
    ),
    "Donation": Row(_donation, ("op_a", "charity_1", "sponsor_1"), ("op_b", "charity_2", "sponsor_2", "shop_a")),
    "Exchange": Row(_exchange, ("op_a", "op_b"), OTHERS),
}

NODE = "query($v: ID!) { node(id: $v) { __typename id } }"


def _typed(row: Row) -> str:
    return f"query($v: {row.typed_var}) {{ {row.typed} }}"


async def _answer(db, settings, who, query: str, value: str, *, swap: str | None = None) -> str:
    """The whole response as JSON; with `swap`, `value` is written as `swap` (the real id)."""
    result = await execute(db, settings, who, query, {"v": value})
    text = json.dumps({"data": result.data, "errors": [e.formatted for e in result.errors or []]}, sort_keys=True)
    return text.replace(value, swap) if swap else text


def test_every_node_type_has_a_row():
    graphql_schema = build_schema()._schema
    implementations = graphql_schema.get_implementations(graphql_schema.get_type("Node")).objects
    assert {t.name for t in implementations} == set(ROWS)


@pytest.mark.parametrize("type_name", sorted(ROWS))
async def test_the_owner_reads_a_node_and_an_outsider_gets_the_unknown_id_answer(db, settings, type_name):
    row = ROWS[type_name]
    w = await World().build(db)
    w.settings = settings
    pk, key = await row.build(db, w)
    gid, unknown_gid = encode_id(type_name, pk), encode_id(type_name, UNKNOWN_PK)
    typed_value, typed_unknown = (key, UNKNOWN_KEY) if key is not None else (gid, unknown_gid)

    for owner in row.owners:
        result = await execute(db, settings, w.who(owner), NODE, {"v": gid})
        assert result.errors is None and result.data == {"node": {"__typename": type_name, "id": gid}}, (owner, result)
        if row.typed:
            result = await execute(db, settings, w.who(owner), _typed(row), {"v": typed_value})
            assert result.errors is None and list(result.data.values()) == [{"id": gid}], (owner, result)

    for outsider in row.outsiders:
        who = w.who(outsider)
        seen = await _answer(db, settings, who, NODE, gid)
        if row.public:
            assert json.loads(seen)["data"] == {"node": {"__typename": type_name, "id": gid}}, outsider
        else:
            assert seen == await _answer(db, settings, who, NODE, unknown_gid, swap=gid), outsider
        if row.typed:
            seen = await _answer(db, settings, who, _typed(row), typed_value)
            if row.public:
                assert list(json.loads(seen)["data"].values()) == [{"id": gid}], outsider
            else:
                assert seen == await _answer(db, settings, who, _typed(row), typed_unknown, swap=typed_value), outsider


# ---------------------------------------------------------------- mutations by id


@dataclasses.dataclass(frozen=True)
class MutationRow:
    type_name: str
    build: Callable[..., Awaitable[tuple[int, str | None]]]
    model: type
    #: The mutation with `$input`, selecting the payload's errors and object id.
    mutation: str
    #: The input for an id (the world gives values such as the settlement's digest).
    input: Callable[[World, str, int], dict]
    owner: str
    outsiders: tuple[str, ...]


def _redemption_mutation(name: str) -> str:
    return f"mutation($input: {name[0].upper()}{name[1:]}Input!) {{ {name}(input: $input) {{ redemption {{ id status }} errors {{ code message field }} }} }}"


def _settlement_mutation(name: str) -> str:
    return f"mutation($input: {name[0].upper()}{name[1:]}Input!) {{ {name}(input: $input) {{ settlement {{ id status }} errors {{ code message field }} }} }}"


MUTATIONS = [
    MutationRow(
        "Redemption",
        _redemption,
        Redemption,
        _redemption_mutation("captureRedemption"),
        lambda w, gid, n: {"redemptionId": gid, "idempotencyKey": f"capture-{n}"},
        "shop_a",
        ("shop_c",),
    ),
    MutationRow(
        "Redemption",
        _redemption,
        Redemption,
        _redemption_mutation("voidRedemption"),
        lambda w, gid, n: {"redemptionId": gid, "idempotencyKey": f"void-{n}"},
        "shop_a",
        ("shop_c",),
    ),
    MutationRow(
        "Redemption",
        _captured_redemption,
        Redemption,
        _redemption_mutation("refundRedemption"),
        lambda w, gid, n: {
            "redemptionId": gid,
            "amountWon": 100,
            "idempotencyKey": f"refund-{n}",
            "reason": "returned",
        },
        "shop_a",
        ("shop_c",),
    ),
    MutationRow(
        "Settlement",
        _settlement,
        Settlement,
        _settlement_mutation("confirmSettlement"),
        lambda w, gid, n: {"settlementId": gid, "digest": w.digest},
        "op_a",
        ("op_c",),
    ),
    MutationRow(
        "Settlement",
        _settlement,
        Settlement,
        _settlement_mutation("disputeSettlement"),
        lambda w, gid, n: {"settlementId": gid, "reason": "a line is missing"},
        "op_a",
        ("op_c",),
    ),
    MutationRow(
        "Discrepancy",
        _discrepancy,
        Discrepancy,
        "mutation($input: ResolveDiscrepancyInput!) { resolveDiscrepancy(input: $input) "
        "{ discrepancy { id status } errors { code message field } } }",
        lambda w, gid, n: {"discrepancyId": gid, "resolution": "booked late"},
        "op_a",
        ("op_c",),
    ),
]


async def _state(db, model: type, pk: int) -> tuple:
    """The object's columns, and for a settlement the operators' responses to it."""
    async with db.session() as s:
        row = await s.get(model, pk, populate_existing=True)
        columns = tuple(getattr(row, c.key) for c in model.__mapper__.column_attrs)
        responses = 0
        if model is Settlement:
            responses = (
                await s.execute(
                    sa.select(sa.func.count())
                    .select_from(SettlementResponse)
                    .where(SettlementResponse.settlement_id == pk)
                )
            ).scalar_one()
        return columns, responses


@pytest.mark.parametrize("row", MUTATIONS, ids=lambda r: r.mutation.split("(input")[0].split()[-1])
async def test_an_outsider_mutating_by_id_gets_the_unknown_id_answer_and_changes_nothing(db, settings, row):
    w = await World().build(db)
    w.settings = settings
    pk, _ = await row.build(db, w)
    gid, unknown_gid = encode_id(row.type_name, pk), encode_id(row.type_name, UNKNOWN_PK)
    before = await _state(db, row.model, pk)

    for n, outsider in enumerate(row.outsiders):
        who = w.who(outsider)
        known = await execute(db, settings, who, row.mutation, {"input": row.input(w, gid, n)})
        unknown = await execute(db, settings, who, row.mutation, {"input": row.input(w, unknown_gid, n)})
        as_json = [
            json.dumps({"data": r.data, "errors": [e.formatted for e in r.errors or []]}, sort_keys=True)
            for r in (known, unknown)
        ]
        assert as_json[0] == as_json[1].replace(unknown_gid, gid), outsider
        assert await _state(db, row.model, pk) == before, outsider

    # The owner's own call works: the id was live, the refusal was tenancy.
    result = await execute(db, settings, w.who(row.owner), row.mutation, {"input": row.input(w, gid, 99)})
    assert result.errors is None, result.errors
    payload = next(iter(result.data.values()))
    assert payload["errors"] == [] and await _state(db, row.model, pk) != before, payload
