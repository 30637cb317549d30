"""Members: operator-scoped identity, enrolment, status."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import InvalidInput, InvalidState, NotFound
from gateway.members import balance, enroll, get_member, require_member, set_member_status
from gateway.models import MemberStatus
from tests.gateway import factories as f


async def test_a_member_is_enrolled_once_per_operator(db):
    async with db.transaction() as s:
        op_a, op_b = await f.operator(s), await f.operator(s)
        first = await enroll(session=s, operator_id=op_a.id, external_id="u-1")
        again = await enroll(session=s, operator_id=op_a.id, external_id="u-1")
        other = await enroll(session=s, operator_id=op_b.id, external_id="u-1")
        assert first.id == again.id != other.id
        assert first.status == MemberStatus.ACTIVE and first.enrolled_at is not None
        b = await balance(s, first)
        assert (b.unit, b.available, b.held, b.total) == (op_a.unit_code, 0, 0, 0)


async def test_another_operators_member_is_not_found(db):
    async with db.transaction() as s:
        op_a, op_b = await f.operator(s), await f.operator(s)
        await enroll(session=s, operator_id=op_a.id, external_id="u-1")
        assert await get_member(s, op_b.id, "u-1") is None
        with pytest.raises(NotFound):
            await require_member(s, op_b.id, "u-1")
        with pytest.raises(NotFound):
            await set_member_status(session=s, operator_id=op_b.id, external_id="u-1", status=MemberStatus.SUSPENDED)


async def test_status_changes_and_closing_is_final(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        await enroll(session=s, operator_id=op.id, external_id="u-1")
        m = await set_member_status(session=s, operator_id=op.id, external_id="u-1", status=MemberStatus.SUSPENDED)
        assert m.status == MemberStatus.SUSPENDED
        m = await set_member_status(session=s, operator_id=op.id, external_id="u-1", status="ACTIVE")
        assert m.status == MemberStatus.ACTIVE
        await set_member_status(session=s, operator_id=op.id, external_id="u-1", status=MemberStatus.CLOSED)
        with pytest.raises(InvalidState):
            await set_member_status(session=s, operator_id=op.id, external_id="u-1", status=MemberStatus.ACTIVE)
    async with db.session() as s:
        assert (await get_member(s, op.id, "u-1")).status == MemberStatus.CLOSED


async def test_an_empty_or_overlong_external_id_is_invalid(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        for bad in ("", " ", "x" * 129):
            with pytest.raises(InvalidInput):
                await enroll(session=s, operator_id=op.id, external_id=bad)


async def test_concurrent_first_activities_enrol_one_member(db):
    async with db.transaction() as s:
        op = await f.operator(s)

    async def attempt():
        async with db.transaction() as s:
            return (await enroll(session=s, operator_id=op.id, external_id="new")).id

    ids = await asyncio.gather(*(attempt() for _ in range(5)))
    assert len(set(ids)) == 1
