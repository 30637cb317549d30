"""Member codes: unguessable, single-use, short-lived, bound to member and purpose."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa

from gateway.codes import consume_member_code, issue_member_code, ttl_for
from gateway.errors import InvalidMemberCode, MemberCodeExpired, MemberSuspended, NotFound
from gateway.members import enroll, set_member_status
from gateway.models import MemberCode, MemberCodePurpose, MemberStatus
from tests.gateway import factories as f

NOW = dt.datetime(2025, 3, 5, 3, 0, tzinfo=dt.UTC)
PAY = MemberCodePurpose.PAYMENT


async def _issue(db, purpose=PAY, ttl=None):
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await enroll(session=s, operator_id=op.id, external_id="kim")
        issued = await issue_member_code(
            session=s, operator_id=op.id, external_id="kim", purpose=purpose, now=NOW, ttl_seconds=ttl
        )
    return op, m, issued


async def test_a_code_is_sixteen_digits_stored_only_as_a_hash(db):
    op, m, issued = await _issue(db)
    assert len(issued.code) == 16 and issued.code.isdigit()
    assert issued.expires_at == NOW + dt.timedelta(seconds=180)
    async with db.session() as s:
        stored = (await s.execute(sa.select(MemberCode))).scalar_one()
        assert issued.code not in stored.code_hash and len(stored.code_hash) == 64


async def test_a_code_works_once(db):
    op, m, issued = await _issue(db)
    async with db.transaction() as s:
        member = await consume_member_code(session=s, code=issued.code, purpose=PAY, now=NOW)
        assert member.id == m.id
    async with db.transaction() as s:
        with pytest.raises(InvalidMemberCode):
            await consume_member_code(session=s, code=issued.code, purpose=PAY, now=NOW)


async def test_a_code_used_in_a_failed_transaction_is_still_unused(db):
    op, m, issued = await _issue(db)
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            await consume_member_code(session=s, code=issued.code, purpose=PAY, now=NOW)
            raise RuntimeError("the payment failed")
    async with db.transaction() as s:
        assert (await consume_member_code(session=s, code=issued.code, purpose=PAY, now=NOW)).id == m.id


async def test_an_expired_code_is_refused(db):
    op, m, issued = await _issue(db)
    async with db.transaction() as s:
        with pytest.raises(MemberCodeExpired):
            await consume_member_code(session=s, code=issued.code, purpose=PAY, now=NOW + dt.timedelta(seconds=180))


async def test_a_code_is_bound_to_its_purpose(db):
    op, m, issued = await _issue(db, purpose=MemberCodePurpose.RECEIVE)
    assert issued.expires_at == NOW + dt.timedelta(seconds=600)
    async with db.transaction() as s:
        with pytest.raises(InvalidMemberCode):
            await consume_member_code(session=s, code=issued.code, purpose=PAY, now=NOW)
        assert (
            await consume_member_code(session=s, code=issued.code, purpose=MemberCodePurpose.RECEIVE, now=NOW)
        ).id == m.id


@pytest.mark.parametrize(
    "code", ["", "123", "12345678901234567", "abcdefghijklmnop", "0000000000000000", "１２３４５６７８９０１２３４５６"]
)
async def test_malformed_or_unknown_codes_are_invalid(db, code):
    await _issue(db)
    async with db.transaction() as s:
        with pytest.raises(InvalidMemberCode):
            await consume_member_code(session=s, code=code, purpose=PAY, now=NOW)


async def test_codes_for_unknown_or_suspended_members_are_refused(db, settings):
    async with db.transaction() as s:
        op = await f.operator(s)
        await enroll(session=s, operator_id=op.id, external_id="kim")
        with pytest.raises(NotFound):
            await issue_member_code(session=s, operator_id=op.id, external_id="nobody", purpose=PAY, now=NOW)
        await set_member_status(session=s, operator_id=op.id, external_id="kim", status=MemberStatus.SUSPENDED)
        with pytest.raises(MemberSuspended):
            await issue_member_code(
                session=s,
                operator_id=op.id,
                external_id="kim",
                purpose=PAY,
                now=NOW,
                ttl_seconds=ttl_for(settings, PAY),
            )


async def test_concurrent_uses_of_one_code_let_exactly_one_through(db):
    op, m, issued = await _issue(db)

    async def use():
        try:
            async with db.transaction() as s:
                await consume_member_code(session=s, code=issued.code, purpose=PAY, now=NOW)
                await asyncio.sleep(0.02)
            return True
        except InvalidMemberCode:
            return False

    assert sum(await asyncio.gather(*(use() for _ in range(10)))) == 1
