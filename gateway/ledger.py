"""The double-entry ledger: accounts, postings, two-phase holds, balances and lots.

What a caller may rely on
-------------------------
* **Accounts** hold one unit each and are keyed by (owner kind, owner id, unit, purpose).
  Get them with the get-or-create helpers (safe under concurrency):
  `wallet_account(session, member)`, `issuance_account(session, operator_id)`,
  `breakage_account(session, operator_id)`, `partner_account(session, partner_id, unit, purpose)`,
  `clearing_account(session, agreement_id, unit)`. A member wallet never goes below zero;
  every other account may (issuance is where a unit's points come from, so it is negative).
  An account's total is `available + held`.
* **Postings**: `post(session=, kind=, legs=[Leg(debit, credit, amount), ...], memo=)`
  moves points in one transaction. Every leg debits and credits accounts of the same unit,
  so the entries of each unit sum to zero; one call may move several units (an exchange).
  Balances change in the same database transaction as the entries. A debit a wallet cannot
  cover raises `InsufficientPoints` and changes nothing.
* **Bulk**: `post_many(session=, postings=[Posting(kind, legs, memo, reference), ...])` posts
  many transactions with a handful of statements (used by `record_activities`); all or nothing.
* **Holds** (two-phase, the TigerBeetle model): `create_hold` moves `amount` of the debit
  account from available to held; then exactly one of `post_hold(hold, amount=...)`
  (the amount, at most the hold, goes to the credit account, the rest is released),
  `void_hold` or `expire_holds(now=)` (holds past `expires_at`). A hold that is no longer
  PENDING raises `InvalidState`; posting more than held raises `AmountExceedsAuthorized`.
* **Entries** (`LedgerEntry`) are written once per account touched, never changed:
  `points` is the signed change to the account's total, `held_change` the change to its held
  part, `balance_after`/`available_after` the balances right after. A hold writes an entry
  with points 0 and held_change > 0; its release a RELEASE entry with points 0 and
  held_change < 0. So total = sum(points) and held = sum(held_change) for every account.
  A member's statement is `SELECT ... WHERE account_id = wallet ORDER BY id DESC`.
* **References**: every movement has one `reference` ("mv_" + 20 base32 characters) shared by
  all its transactions, entries and holds (a redemption's hold, capture and refunds pass
  the hold's reference on). Pass `reference=` to continue a movement; omit it to start one.
* **Lots**: credits to a wallet become dated lots (expiry from the operator's earning rule
  unless the leg says otherwise); debits and holds take from the oldest lots first (FIFO);
  a released hold returns to the lots it came from. `gateway.expiry.expire_points` expires
  whatever is left of lots past their date. Over one wallet, sum(lot.remaining) == available
  and sum(lot.held) == held.
* **Member status**: a wallet of a SUSPENDED or CLOSED member cannot be debited for spending
  (REDEEM, DONATE, EXCHANGE_OUT holds or postings) nor credited EARN or EXCHANGE_IN
  (`MemberSuspended`). Corrections, releases, refunds and expiry still apply.

Concurrency: balances change by conditional `UPDATE ... WHERE available >= x` (a row lock on
PostgreSQL; SQLite serializes writers), accounts are locked in id order within a call, and
lots are only touched after their account's row has been updated in the same transaction.
Functions run inside the caller's transaction and never commit.

Examples
--------
Checkout (hold, then capture part and release the rest)::

    wallet = await wallet_account(session, member)
    shop = await partner_account(session, merchant_id, wallet.unit, "merchant")
    hold = await create_hold(session=session, debit=wallet, credit=shop, amount=300,
                             kind=EntryKind.REDEEM, memo="order A-17",
                             expires_at=now + timedelta(minutes=15), now=now)
    await post_hold(session=session, hold=hold, amount=200, now=now)  # 100 released
    # refund later, same movement:
    await post(session=session, kind=EntryKind.REFUND, reference=hold.reference,
               legs=[Leg(shop, wallet, 50)], memo="refund order A-17")

Exchange between operators (two units through the agreement's clearing accounts)::

    out_clearing = await clearing_account(session, agreement.id, "SWM")
    in_clearing = await clearing_account(session, agreement.id, "GWP")
    await post(session=session, kind=EntryKind.EXCHANGE_OUT, memo="exchange to GWP",
               legs=[Leg(wallet_a, out_clearing, 1000),
                     Leg(in_clearing, wallet_b, 480, kind=EntryKind.EXCHANGE_IN)])
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from gateway.db import utcnow
from gateway.errors import (
    AmountExceedsAuthorized,
    InsufficientPoints,
    InvalidInput,
    InvalidState,
    MemberSuspended,
    NotFound,
)
from gateway.models.activity import DEFAULT_RULE, EarningRule
from gateway.models.ledger import (
    Account,
    EntryKind,
    Hold,
    HoldLot,
    HoldStatus,
    LedgerEntry,
    LedgerTransaction,
    Lot,
    OwnerKind,
)
from gateway.models.members import Member, MemberStatus
from gateway.models.partners import Partner

SEOUL = ZoneInfo("Asia/Seoul")

#: Kinds that spend a member's points (refused for a member who is not ACTIVE).
SPEND_KINDS = frozenset({EntryKind.REDEEM, EntryKind.DONATE, EntryKind.EXCHANGE_OUT})
#: Kinds that give a member new points (refused for a member who is not ACTIVE).
GAIN_KINDS = frozenset({EntryKind.EARN, EntryKind.EXCHANGE_IN})

MEMO_MAX = 300


# ---------------------------------------------------------------- references, dates


def new_reference(prefix: str = "mv") -> str:
    """A fresh opaque movement reference, e.g. ``mv_k5x2...`` (20 base32 characters, 100 bits)."""
    return f"{prefix}_" + base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()[:20]


def seoul_date(instant: dt.datetime) -> dt.date:
    """The calendar day in Asia/Seoul of an instant."""
    return instant.astimezone(SEOUL).date()


def add_months(day: dt.date, months: int) -> dt.date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def lot_expiry(credited_at: dt.datetime, months: int | None) -> dt.datetime | None:
    """When points credited at `credited_at` expire: the end of the same Seoul calendar day
    `months` months later (None or 0 months: never)."""
    if not months:
        return None
    last_day = add_months(seoul_date(credited_at), months)
    return dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), SEOUL).astimezone(dt.UTC)


async def expiry_months(session: AsyncSession, operator_id: int) -> int | None:
    """The operator's expiry policy (its earning rule, else the program default)."""
    months = await session.scalar(sa.select(EarningRule.expiry_months).where(EarningRule.operator_id == operator_id))
    if months is None:
        exists = await session.scalar(sa.select(EarningRule.id).where(EarningRule.operator_id == operator_id))
        return None if exists else DEFAULT_RULE["expiry_months"]
    return months


# ---------------------------------------------------------------- accounts


@dataclass(frozen=True)
class Balance:
    unit: str
    available: int
    held: int

    @property
    def total(self) -> int:
        return self.available + self.held


async def get_or_create_account(
    session: AsyncSession,
    *,
    owner_kind: OwnerKind,
    owner_id: int,
    unit: str,
    purpose: str,
    allow_negative: bool = True,
    has_lots: bool = False,
) -> Account:
    """The account for (owner, unit, purpose), created on first use (race-safe)."""
    stmt = (
        sa.select(Account)
        .where(
            Account.owner_kind == owner_kind,
            Account.owner_id == owner_id,
            Account.unit == unit,
            Account.purpose == purpose,
        )
        .execution_options(populate_existing=True)
    )
    account = (await session.execute(stmt)).scalar_one_or_none()
    if account is not None:
        return account
    try:
        async with session.begin_nested():
            account = Account(
                owner_kind=owner_kind,
                owner_id=owner_id,
                unit=unit,
                purpose=purpose,
                available=0,
                held=0,
                allow_negative=allow_negative,
                has_lots=has_lots,
            )
            session.add(account)
            await session.flush()
        return account
    except IntegrityError:
        # Another transaction created it first (and has committed: PostgreSQL made us wait).
        return (await session.execute(stmt)).scalar_one()


async def get_or_create_accounts(session: AsyncSession, *specs: dict) -> list[Account]:
    """`get_or_create_account` for several accounts (each spec: its keyword arguments), in
    order; the existing ones are read in one statement, missing ones created one by one."""
    conditions = [
        sa.and_(
            Account.owner_kind == spec["owner_kind"],
            Account.owner_id == spec["owner_id"],
            Account.unit == spec["unit"],
            Account.purpose == spec["purpose"],
        )
        for spec in specs
    ]
    rows = (
        await session.execute(sa.select(Account).where(sa.or_(*conditions)).execution_options(populate_existing=True))
    ).scalars()
    found = {(a.owner_kind, a.owner_id, a.unit, a.purpose): a for a in rows}
    accounts = []
    for spec in specs:
        account = found.get((spec["owner_kind"], spec["owner_id"], spec["unit"], spec["purpose"]))
        accounts.append(account if account is not None else await get_or_create_account(session, **spec))
    return accounts


def wallet_spec(member: Member, unit: str) -> dict:
    """The `get_or_create_accounts` spec of the member's wallet in `unit` (see `wallet_account`)."""
    return dict(
        owner_kind=OwnerKind.MEMBER,
        owner_id=member.id,
        unit=unit,
        purpose="wallet",
        allow_negative=False,
        has_lots=True,
    )


async def operator_unit(session: AsyncSession, operator_id: int) -> str:
    unit = await session.scalar(sa.select(Partner.unit_code).where(Partner.id == operator_id))
    if not unit:
        raise InvalidState("the operator has no point unit")
    return unit


async def wallet_account(session: AsyncSession, member: Member, *, unit: str | None = None) -> Account:
    """The member's wallet in its operator's unit (never negative, kept in lots).
    `unit` saves a query when the caller knows the operator's unit."""
    return await get_or_create_account(
        session,
        owner_kind=OwnerKind.MEMBER,
        owner_id=member.id,
        unit=unit or await operator_unit(session, member.operator_id),
        purpose="wallet",
        allow_negative=False,
        has_lots=True,
    )


async def find_wallet(session: AsyncSession, member: Member) -> Account | None:
    """The member's wallet if it exists (reads never create accounts)."""
    return (
        await session.execute(
            sa.select(Account)
            .where(Account.owner_kind == OwnerKind.MEMBER, Account.owner_id == member.id, Account.purpose == "wallet")
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def partner_account(
    session: AsyncSession, partner_id: int, unit: str, purpose: str, *, allow_negative: bool = True
) -> Account:
    """A partner's account in `unit` for `purpose` ("merchant", "beneficiary", "sponsor", ...)."""
    return await get_or_create_account(
        session,
        owner_kind=OwnerKind.PARTNER,
        owner_id=partner_id,
        unit=unit,
        purpose=purpose,
        allow_negative=allow_negative,
    )


async def issuance_account(session: AsyncSession, operator_id: int) -> Account:
    """Where an operator's points come from (EARN, upward ADJUST) and go back to."""
    return await partner_account(session, operator_id, await operator_unit(session, operator_id), "issuance")


async def breakage_account(session: AsyncSession, operator_id: int) -> Account:
    """Where an operator's expired points go."""
    return await partner_account(session, operator_id, await operator_unit(session, operator_id), "breakage")


async def clearing_account(session: AsyncSession, agreement_id: int, unit: str, purpose: str = "clearing") -> Account:
    """An agreement's clearing account in one unit (cross-program redemptions, exchanges)."""
    return await get_or_create_account(
        session, owner_kind=OwnerKind.AGREEMENT, owner_id=agreement_id, unit=unit, purpose=purpose
    )


async def account_balance(session: AsyncSession, account: Account | int) -> Balance:
    """The account's balance as the database has it now."""
    account_id = account if isinstance(account, int) else account.id
    row = (
        await session.execute(sa.select(Account.unit, Account.available, Account.held).where(Account.id == account_id))
    ).one()
    return Balance(unit=row.unit, available=row.available, held=row.held)


# ---------------------------------------------------------------- postings


@dataclass(frozen=True)
class Leg:
    """Move `amount` (> 0) from `debit` to `credit` (same unit).

    `kind` overrides the transaction's kind for this leg's entries (e.g. EXCHANGE_IN).
    For a credit to a wallet, `lot_expires_at`/`earned_on` date the new lot (default: the
    operator's expiry policy from now; `never_expires=True` for a lot without expiry).
    """

    debit: Account
    credit: Account
    amount: int
    kind: EntryKind | None = None
    lot_expires_at: dt.datetime | None = None
    earned_on: dt.date | None = None
    never_expires: bool = False


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidInput("an amount of points must be a whole number above zero")


def _memo(memo: str | None) -> str | None:
    return None if memo is None else memo[:MEMO_MAX]


async def _check_member_status(session: AsyncSession, account: Account, kind: EntryKind, *, debit: bool) -> None:
    if account.owner_kind != OwnerKind.MEMBER:
        return
    if (debit and kind in SPEND_KINDS) or (not debit and kind in GAIN_KINDS):
        status = await session.scalar(sa.select(Member.status).where(Member.id == account.owner_id))
        if status != MemberStatus.ACTIVE:
            raise MemberSuspended(f"the member is {status.value if status else 'unknown'}")


async def _update_account(
    session: AsyncSession, account: Account, *, d_available: int, d_held: int = 0
) -> tuple[int, int]:
    """Apply a change; refuse (InsufficientPoints) to take a non-negative account below zero.

    The UPDATE itself is the check and the row lock: concurrent spenders wait for each other
    and re-evaluate `available >= x` on the committed row (PostgreSQL READ COMMITTED).
    """
    t = Account.__table__
    stmt = sa.update(t).where(t.c.id == account.id)
    if d_available < 0 and not account.allow_negative:
        stmt = stmt.where(t.c.available >= -d_available)
    stmt = stmt.values(available=t.c.available + d_available, held=t.c.held + d_held).returning(t.c.available, t.c.held)
    row = (await session.execute(stmt)).first()
    if row is None:
        raise InsufficientPoints("not enough points available")
    return row.available, row.held


def _sync_accounts(accounts: Iterable[Account], after: dict[int, tuple[int, int]]) -> None:
    for account in accounts:
        if account.id in after:
            set_committed_value(account, "available", after[account.id][0])
            set_committed_value(account, "held", after[account.id][1])


def _lot_order():
    """FIFO: soonest expiry first, never-expiring last, then by id. NULLS LAST is PostgreSQL's
    default for ascending, so this order walks the index (account_id, expires_at, id)."""
    return (Lot.expires_at.asc().nulls_last(), Lot.id)


#: Lots the database looks at in one read of a spend (only those consumed are sent back);
#: the next read, if the spend needs more, looks at four times as many.
LOT_BATCH = 64


def _after_lot(expires_at: dt.datetime | None, lot_id: int):
    """Lots after (expires_at, id) in `_lot_order` (keyset continuation)."""
    if expires_at is None:
        return sa.and_(Lot.expires_at.is_(None), Lot.id > lot_id)
    return sa.or_(
        Lot.expires_at > expires_at,
        sa.and_(Lot.expires_at == expires_at, Lot.id > lot_id),
        Lot.expires_at.is_(None),
    )


async def _free_lots(session: AsyncSession, account_id: int, amount: int) -> list[dict]:
    """The wallet's oldest lots with free points, just enough to cover `amount` (all of them if
    they fall short), as dicts (id, remaining, expires_at), oldest first.

    One statement reads the next `LOT_BATCH` free lots in FIFO order (an index range scan) and
    sends back only those the running sum needs, so a spend costs the lots it consumes, not
    the wallet's history. The caller has already updated (so row-locked) the wallet: no
    spender or expiry can move these lots meanwhile, and they need no lock of their own."""
    t = Lot.__table__
    found: list[dict] = []
    batch, after = LOT_BATCH, None
    while amount > 0:
        stmt = sa.select(t.c.id, t.c.remaining, t.c.expires_at).where(t.c.account_id == account_id, t.c.remaining > 0)
        if after is not None:
            stmt = stmt.where(_after_lot(*after))
        window = stmt.order_by(*_lot_order()).limit(batch).subquery()
        order = (window.c.expires_at.asc().nulls_last(), window.c.id)
        ranked = sa.select(
            window.c.id,
            window.c.remaining,
            window.c.expires_at,
            (sa.func.sum(window.c.remaining).over(order_by=order) - window.c.remaining).label("before"),
        ).subquery()
        rows = (
            await session.execute(
                sa.select(ranked.c.id, ranked.c.remaining, ranked.c.expires_at)
                .where(ranked.c.before < amount)
                .order_by(ranked.c.expires_at.asc().nulls_last(), ranked.c.id)
            )
        ).all()
        if not rows:
            break
        for row in rows:
            found.append(dict(id=row.id, remaining=row.remaining, expires_at=row.expires_at))
            amount -= row.remaining
        after, batch = (rows[-1].expires_at, rows[-1].id), batch * 4
    return found  # short only when the caller's amount counts lots not written yet (post_many)


def _takes(lots: Iterable, amount: int) -> list[tuple[int, int]]:
    """(lot id, points taken) taking `amount` from `lots` (dicts or Lot objects) in their order."""
    takes = []
    for lot in lots:
        if amount <= 0:
            break
        remaining = lot["remaining"] if isinstance(lot, dict) else lot.remaining
        take = min(remaining, amount)
        if take:
            takes.append((lot["id"] if isinstance(lot, dict) else lot.id, take))
            amount -= take
    if amount > 0:  # pragma: no cover - the invariant sum(remaining) == available forbids it
        raise RuntimeError(f"lots are short of {amount} points")
    return takes


async def _apply_takes(session: AsyncSession, takes: Sequence[tuple[int, int]], *, hold: bool = False) -> None:
    """Take points from lots with one Core UPDATE (relative, so no ORM objects are needed);
    with `hold` the points move to the lots' held part."""
    if not takes:
        return
    t = Lot.__table__
    values = {"remaining": t.c.remaining - sa.bindparam("b_take")}
    if hold:
        values["held"] = t.c.held + sa.bindparam("b_take")
    stmt = sa.update(t).where(t.c.id == sa.bindparam("b_id")).values(**values)
    params = [dict(b_id=lot_id, b_take=take) for lot_id, take in takes]
    await session.execute(stmt, params if len(params) > 1 else params[0])


async def _take_from_lots(
    session: AsyncSession, account_id: int, amount: int, lots: Sequence[Lot] | None = None
) -> None:
    """Take `amount` of free points from the wallet's lots, oldest first (`lots`: the caller's
    own pick, in order, e.g. expiry's lots past their date)."""
    if lots is None:
        await _apply_takes(session, _takes(await _free_lots(session, account_id, amount), amount))
        return
    takes = _takes(lots, amount)
    await _apply_takes(session, takes)
    taken = dict(takes)
    for lot in lots:  # keep the caller's objects true to the database
        if lot.id in taken:
            set_committed_value(lot, "remaining", lot.remaining - taken[lot.id])


async def _new_lot(session: AsyncSession, *, account: Account, entry: LedgerEntry, leg: Leg, now: dt.datetime) -> None:
    if leg.never_expires:
        expires_at = None
    elif leg.lot_expires_at is not None:
        expires_at = leg.lot_expires_at
    else:
        member_operator = await session.scalar(sa.select(Member.operator_id).where(Member.id == account.owner_id))
        expires_at = lot_expiry(now, await expiry_months(session, member_operator)) if member_operator else None
    session.add(
        Lot(
            account_id=account.id,
            entry_id=entry.id,
            amount=leg.amount,
            remaining=leg.amount,
            held=0,
            earned_on=leg.earned_on or seoul_date(now),
            expires_at=expires_at,
            created_at=now,
        )
    )


async def post(
    *,
    session: AsyncSession,
    kind: EntryKind,
    legs: Sequence[Leg],
    memo: str | None,
    reference: str | None = None,
    now: dt.datetime | None = None,
    savepoint: bool = True,
    _debit_lots: dict[int, Sequence[Lot]] | None = None,
) -> LedgerTransaction:
    """Post `legs` as one transaction (entries balance per unit); returns it (`.reference`).

    Raises InvalidInput (bad amount, mixed units), InsufficientPoints (a wallet cannot cover a
    debit), MemberSuspended; in each case nothing changed. With `savepoint=False` the caller
    guarantees its own rollback on error (saves two round trips in bulk work).
    """
    if not legs:
        raise InvalidInput("a posting needs at least one leg")
    now = now or utcnow()
    for leg in legs:
        _check_amount(leg.amount)
        if leg.debit.id == leg.credit.id:
            raise InvalidInput("a leg must move points between two different accounts")
        if leg.debit.unit != leg.credit.unit:
            raise InvalidInput("a leg must debit and credit accounts of the same unit")
    for leg in legs:
        leg_kind = leg.kind or kind
        await _check_member_status(session, leg.debit, leg_kind, debit=True)
        await _check_member_status(session, leg.credit, leg_kind, debit=False)

    if savepoint:
        async with session.begin_nested():
            txn, after = await _post(session, kind, legs, memo, reference, now, _debit_lots or {})
    else:
        txn, after = await _post(session, kind, legs, memo, reference, now, _debit_lots or {})
    _sync_accounts([a for leg in legs for a in (leg.debit, leg.credit)], after)
    return txn


async def _post(session, kind, legs, memo, reference, now, debit_lots):
    accounts: dict[int, Account] = {}
    delta: dict[int, int] = {}
    for leg in legs:
        accounts[leg.debit.id], accounts[leg.credit.id] = leg.debit, leg.credit
        delta[leg.debit.id] = delta.get(leg.debit.id, 0) - leg.amount
        delta[leg.credit.id] = delta.get(leg.credit.id, 0) + leg.amount
    after: dict[int, tuple[int, int]] = {}
    for account_id in sorted(delta):  # one lock order for every caller: no deadlocks
        after[account_id] = await _update_account(session, accounts[account_id], d_available=delta[account_id])

    txn = LedgerTransaction(reference=reference or new_reference(), kind=kind, memo=_memo(memo), created_at=now)
    session.add(txn)
    await session.flush()

    # Running balances, starting from the balance before this transaction.
    running = {aid: [after[aid][0] - delta[aid], after[aid][1]] for aid in delta}
    credit_entries: list[tuple[Leg, LedgerEntry]] = []
    for leg in legs:
        leg_kind = leg.kind or kind
        for account, points in ((leg.debit, -leg.amount), (leg.credit, leg.amount)):
            state = running[account.id]
            state[0] += points
            entry = LedgerEntry(
                transaction_id=txn.id,
                account_id=account.id,
                unit=account.unit,
                kind=leg_kind,
                points=points,
                held_change=0,
                balance_after=state[0] + state[1],
                available_after=state[0],
                reference=txn.reference,
                memo=txn.memo,
                created_at=now,
            )
            session.add(entry)
            if points > 0 and account.has_lots:
                credit_entries.append((leg, entry))
    await session.flush()

    for index, leg in enumerate(legs):
        if leg.debit.has_lots:
            await _take_from_lots(session, leg.debit.id, leg.amount, debit_lots.get(index))
    for leg, entry in credit_entries:
        await _new_lot(session, account=leg.credit, entry=entry, leg=leg, now=now)
    await session.flush()
    return txn, after


async def post_transfer(
    *,
    session: AsyncSession,
    debit: Account,
    credit: Account,
    amount: int,
    kind: EntryKind,
    memo: str | None,
    reference: str | None = None,
    now: dt.datetime | None = None,
    lot_expires_at: dt.datetime | None = None,
    earned_on: dt.date | None = None,
) -> LedgerTransaction:
    """`post` with a single leg."""
    leg = Leg(debit, credit, amount, lot_expires_at=lot_expires_at, earned_on=earned_on)
    return await post(session=session, kind=kind, legs=[leg], memo=memo, reference=reference, now=now)


async def bulk_insert(session: AsyncSession, model, rows: list[dict]) -> list[int]:
    """Insert many rows of an `IdMixin` model in few statements; returns their ids in order.

    PostgreSQL: one multi-row INSERT ... RETURNING per batch (ordered by parameter). SQLite
    cannot order RETURNING rows of a multi-row INSERT, so SQLAlchemy would fall back to one
    statement per row; there the transaction holds the only write lock (BEGIN IMMEDIATE), so
    the ids are simply assigned after the current maximum.
    """
    if not rows:
        return []
    if session.get_bind().dialect.name == "sqlite":
        start = (await session.scalar(sa.select(sa.func.max(model.id)))) or 0
        ids = list(range(start + 1, start + 1 + len(rows)))
        await session.execute(sa.insert(model), [dict(row, id=i) for row, i in zip(rows, ids)])
        return ids
    result = await session.execute(sa.insert(model).returning(model.id, sort_by_parameter_order=True), rows)
    return list(result.scalars().all())


@dataclass(frozen=True)
class Posting:
    """One transaction for `post_many`."""

    kind: EntryKind
    legs: Sequence[Leg]
    memo: str | None
    reference: str | None = None


def _lot_key(lot: dict) -> tuple:
    """`_lot_order` for lots held as dicts (`_seq`: the id, or above every id for a new lot)."""
    expires_at = lot["expires_at"]
    return (expires_at is None, expires_at or dt.datetime.max.replace(tzinfo=dt.UTC), lot["_seq"])


async def post_many(*, session: AsyncSession, postings: Sequence[Posting], now: dt.datetime | None = None) -> list[str]:
    """Post many transactions at once, in order, with a handful of statements (bulk work such
    as a batch of activities). Returns their references. Same rules as `post`, all or nothing:
    one posting a wallet cannot cover raises InsufficientPoints and the caller must roll back
    (run it in a savepoint if the transaction should go on)."""
    if not postings:
        return []
    now = now or utcnow()
    accounts: dict[int, Account] = {}
    for p in postings:
        if not p.legs:
            raise InvalidInput("a posting needs at least one leg")
        for leg in p.legs:
            _check_amount(leg.amount)
            if leg.debit.id == leg.credit.id or leg.debit.unit != leg.credit.unit:
                raise InvalidInput("a leg must move points between two different accounts of one unit")
            accounts[leg.debit.id], accounts[leg.credit.id] = leg.debit, leg.credit
    member_ids = {a.owner_id for a in accounts.values() if a.owner_kind == OwnerKind.MEMBER}
    statuses: dict[int, MemberStatus] = {}
    if member_ids:
        statuses = dict(
            (await session.execute(sa.select(Member.id, Member.status).where(Member.id.in_(member_ids)))).all()
        )
    for p in postings:
        for leg in p.legs:
            kind = leg.kind or p.kind
            for account, spend in ((leg.debit, True), (leg.credit, False)):
                if account.owner_kind == OwnerKind.MEMBER and kind in (SPEND_KINDS if spend else GAIN_KINDS):
                    if statuses.get(account.owner_id) != MemberStatus.ACTIVE:
                        raise MemberSuspended("the member is not active")

    t = Account.__table__
    locked = await session.execute(
        sa.select(t.c.id, t.c.available, t.c.held)
        .where(t.c.id.in_(sorted(accounts)))
        .order_by(t.c.id)
        .with_for_update()
    )
    state = {r.id: [r.available, r.held] for r in locked}

    txn_rows, entry_rows, entry_txn, lot_ops = [], [], [], []
    for index, p in enumerate(postings):
        reference = p.reference or new_reference()
        memo = _memo(p.memo)
        txn_rows.append(dict(reference=reference, kind=p.kind, memo=memo, created_at=now))
        for leg in p.legs:
            kind = leg.kind or p.kind
            for account, points in ((leg.debit, -leg.amount), (leg.credit, leg.amount)):
                st = state[account.id]
                st[0] += points
                if st[0] < 0 and not account.allow_negative:
                    raise InsufficientPoints("not enough points available")
                entry_rows.append(
                    dict(
                        account_id=account.id,
                        unit=account.unit,
                        kind=kind,
                        points=points,
                        held_change=0,
                        balance_after=st[0] + st[1],
                        available_after=st[0],
                        reference=reference,
                        memo=memo,
                        created_at=now,
                    )
                )
                entry_txn.append(index)
            if leg.debit.has_lots:
                lot_ops.append(("debit", leg.debit.id, leg.amount, None))
            if leg.credit.has_lots:
                lot_ops.append(("credit", leg.credit.id, leg.amount, (len(entry_rows) - 1, leg)))

    txn_ids = await bulk_insert(session, LedgerTransaction, txn_rows)
    for row, index in zip(entry_rows, entry_txn):
        row["transaction_id"] = txn_ids[index]
    entry_ids = await bulk_insert(session, LedgerEntry, entry_rows)

    if lot_ops:
        # The existing lots these debits may consume: a FIFO prefix of each wallet's free lots
        # covering its debits in this batch (new lots of the batch can only be consumed instead).
        debits: dict[int, int] = {}
        for op, account_id, amount, _ in lot_ops:
            if op == "debit":
                debits[account_id] = debits.get(account_id, 0) + amount
        lots: dict[int, list[dict]] = {}
        existing: list[dict] = []
        for account_id in sorted(debits):
            pile = lots[account_id] = await _free_lots(session, account_id, debits[account_id])
            for lot in pile:
                lot.update(_seq=lot["id"], _taken=0)
            existing += pile
        new_lots: list[dict] = []
        expiry_cache: dict[int, dt.datetime | None] = {}
        for op, account_id, amount, extra in lot_ops:
            pile = lots.setdefault(account_id, [])
            if op == "credit":
                entry_index, leg = extra
                if leg.never_expires:
                    expires_at = None
                elif leg.lot_expires_at is not None:
                    expires_at = leg.lot_expires_at
                else:
                    if account_id not in expiry_cache:
                        operator_id = await session.scalar(
                            sa.select(Member.operator_id).where(Member.id == accounts[account_id].owner_id)
                        )
                        expiry_cache[account_id] = lot_expiry(now, await expiry_months(session, operator_id))
                    expires_at = expiry_cache[account_id]
                lot = dict(
                    account_id=account_id,
                    entry_id=entry_ids[entry_index],
                    amount=amount,
                    remaining=amount,
                    held=0,
                    earned_on=leg.earned_on or seoul_date(now),
                    expires_at=expires_at,
                    created_at=now,
                    _seq=(1 << 62) + len(new_lots),
                )
                new_lots.append(lot)
                pile.append(lot)
                pile.sort(key=_lot_key)
            else:
                for lot in pile:
                    if amount <= 0:
                        break
                    take = min(lot["remaining"], amount)
                    lot["remaining"] -= take
                    if "_taken" in lot:
                        lot["_taken"] += take
                    amount -= take
                if amount > 0:  # pragma: no cover - the lot invariant forbids it
                    raise RuntimeError(f"wallet {account_id} lots are short of {amount} points")
        await _apply_takes(session, [(lot["id"], lot["_taken"]) for lot in existing if lot["_taken"]])
        if new_lots:
            for lot in new_lots:
                del lot["_seq"]
            await session.execute(sa.insert(Lot), new_lots)

    await session.execute(
        sa.update(t)
        .where(t.c.id == sa.bindparam("b_id"))
        .values(available=sa.bindparam("b_available"), held=sa.bindparam("b_held")),
        [dict(b_id=aid, b_available=st[0], b_held=st[1]) for aid, st in state.items()],
    )
    _sync_accounts(accounts.values(), {aid: (st[0], st[1]) for aid, st in state.items()})
    return [row["reference"] for row in txn_rows]


# ---------------------------------------------------------------- holds


def _entry(
    txn: LedgerTransaction, account: Account, kind: EntryKind, points: int, held_change: int, after, now
) -> LedgerEntry:
    return LedgerEntry(
        transaction_id=txn.id,
        account_id=account.id,
        unit=account.unit,
        kind=kind,
        points=points,
        held_change=held_change,
        balance_after=after[0] + after[1],
        available_after=after[0],
        reference=txn.reference,
        memo=txn.memo,
        created_at=now,
    )


async def create_hold(
    *,
    session: AsyncSession,
    debit: Account,
    credit: Account,
    amount: int,
    kind: EntryKind = EntryKind.REDEEM,
    memo: str | None,
    reference: str | None = None,
    expires_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Hold:
    """Reserve `amount` on `debit` for `credit`. InsufficientPoints/MemberSuspended change nothing."""
    _check_amount(amount)
    if debit.id == credit.id or debit.unit != credit.unit:
        raise InvalidInput("a hold must be between two different accounts of one unit")
    await _check_member_status(session, debit, kind, debit=True)
    now = now or utcnow()
    async with session.begin_nested():
        after = await _update_account(session, debit, d_available=-amount, d_held=amount)
        txn = LedgerTransaction(reference=reference or new_reference(), kind=kind, memo=_memo(memo), created_at=now)
        session.add(txn)
        await session.flush()
        session.add(_entry(txn, debit, kind, 0, amount, after, now))
        hold = Hold(
            reference=txn.reference,
            debit_account_id=debit.id,
            credit_account_id=credit.id,
            unit=debit.unit,
            kind=kind,
            amount=amount,
            posted_amount=0,
            status=HoldStatus.PENDING,
            memo=txn.memo,
            expires_at=expires_at,
            created_at=now,
        )
        session.add(hold)
        await session.flush()
        if debit.has_lots:
            takes = _takes(await _free_lots(session, debit.id, amount), amount)
            await _apply_takes(session, takes, hold=True)
            rows = [dict(hold_id=hold.id, lot_id=lot_id, amount=take) for lot_id, take in takes]
            await session.execute(sa.insert(HoldLot.__table__), rows if len(rows) > 1 else rows[0])
    _sync_accounts([debit], {debit.id: after})
    return hold


async def get_hold(session: AsyncSession, hold_id: int) -> Hold:
    hold = (
        await session.execute(sa.select(Hold).where(Hold.id == hold_id).execution_options(populate_existing=True))
    ).scalar_one_or_none()
    if hold is None:
        raise NotFound("no such hold")
    return hold


async def _resolve(
    session: AsyncSession, hold: Hold, status: HoldStatus, posted: int, now: dt.datetime, *, check_expiry: bool
) -> None:
    """Move the hold out of PENDING exactly once (conditional update: concurrent callers lose)."""
    t = Hold.__table__
    stmt = sa.update(t).where(t.c.id == hold.id, t.c.status == HoldStatus.PENDING.value)
    if check_expiry:
        stmt = stmt.where(sa.or_(t.c.expires_at.is_(None), t.c.expires_at > now))
    stmt = stmt.values(status=status.value, posted_amount=posted, resolved_at=now).returning(t.c.id)
    if (await session.execute(stmt)).first() is None:
        current = await get_hold(session, hold.id)
        if current.status == HoldStatus.PENDING:
            raise InvalidState("the hold has expired")
        raise InvalidState(f"the hold is already {current.status.value}")


def _sync_hold(hold: Hold, status: HoldStatus, posted: int, now: dt.datetime) -> None:
    set_committed_value(hold, "status", status)
    set_committed_value(hold, "posted_amount", posted)
    set_committed_value(hold, "resolved_at", now)


async def _hold_lots(session: AsyncSession, hold: Hold) -> list[tuple[HoldLot, Lot]]:
    rows = await session.execute(
        sa.select(HoldLot, Lot)
        .join(Lot, Lot.id == HoldLot.lot_id)
        .where(HoldLot.hold_id == hold.id)
        .order_by(*_lot_order())
        .execution_options(populate_existing=True)
    )
    return [(r[0], r[1]) for r in rows]


async def get_account(session: AsyncSession, account_id: int) -> Account:
    return (
        await session.execute(
            sa.select(Account).where(Account.id == account_id).execution_options(populate_existing=True)
        )
    ).scalar_one()


async def post_hold(
    *,
    session: AsyncSession,
    hold: Hold,
    amount: int | None = None,
    memo: str | None = None,
    now: dt.datetime | None = None,
) -> LedgerTransaction:
    """Post `amount` (default: all) of a pending hold to its credit account; release the rest.

    AmountExceedsAuthorized if more than the hold; InvalidState if it is not PENDING or has
    passed `expires_at`.
    """
    now = now or utcnow()
    amount = hold.amount if amount is None else amount
    _check_amount(amount)
    if amount > hold.amount:
        raise AmountExceedsAuthorized(f"at most {hold.amount} points are held")
    rest = hold.amount - amount
    async with session.begin_nested():
        await _resolve(session, hold, HoldStatus.POSTED, amount, now, check_expiry=True)
        debit = await get_account(session, hold.debit_account_id)
        credit = await get_account(session, hold.credit_account_id)
        after: dict[int, tuple[int, int]] = {}
        changes = {debit.id: (rest, -hold.amount), credit.id: (amount, 0)}
        for account_id in sorted(changes):
            d_av, d_held = changes[account_id]
            account = debit if account_id == debit.id else credit
            after[account_id] = await _update_account(session, account, d_available=d_av, d_held=d_held)
        txn = LedgerTransaction(reference=hold.reference, kind=hold.kind, memo=_memo(memo or hold.memo), created_at=now)
        session.add(txn)
        await session.flush()
        d_after = after[debit.id]
        if rest:
            # Entries in the order things happened: capture, then release of the rest.
            session.add(_entry(txn, debit, hold.kind, -amount, -amount, (d_after[0] - rest, d_after[1] + rest), now))
            release = _entry(txn, debit, EntryKind.RELEASE, 0, -rest, d_after, now)
            release.memo = _memo(f"{rest} held points released")
            session.add(release)
        else:
            session.add(_entry(txn, debit, hold.kind, -amount, -amount, d_after, now))
        credit_entry = _entry(txn, credit, hold.kind, amount, 0, after[credit.id], now)
        session.add(credit_entry)
        await session.flush()
        if debit.has_lots:
            left = amount
            for hold_lot, lot in await _hold_lots(session, hold):
                take = min(hold_lot.amount, left)
                left -= take
                lot.held -= hold_lot.amount
                lot.remaining += hold_lot.amount - take
        if credit.has_lots:
            await _new_lot(session, account=credit, entry=credit_entry, leg=Leg(debit, credit, amount), now=now)
        await session.flush()
    _sync_hold(hold, HoldStatus.POSTED, amount, now)
    return txn


async def _release(
    session: AsyncSession, hold: Hold, status: HoldStatus, memo: str, now: dt.datetime
) -> LedgerTransaction:
    async with session.begin_nested():
        await _resolve(session, hold, status, 0, now, check_expiry=False)
        debit = await get_account(session, hold.debit_account_id)
        after = await _update_account(session, debit, d_available=hold.amount, d_held=-hold.amount)
        txn = LedgerTransaction(reference=hold.reference, kind=EntryKind.RELEASE, memo=_memo(memo), created_at=now)
        session.add(txn)
        await session.flush()
        session.add(_entry(txn, debit, EntryKind.RELEASE, 0, -hold.amount, after, now))
        if debit.has_lots:
            for hold_lot, lot in await _hold_lots(session, hold):
                lot.held -= hold_lot.amount
                lot.remaining += hold_lot.amount
        await session.flush()
    _sync_hold(hold, status, 0, now)
    return txn


async def void_hold(
    *, session: AsyncSession, hold: Hold, memo: str | None = None, now: dt.datetime | None = None
) -> LedgerTransaction:
    """Release a pending hold in full (InvalidState if it is not PENDING)."""
    now = now or utcnow()
    return await _release(session, hold, HoldStatus.VOIDED, memo or f"hold of {hold.amount} points voided", now)


async def expire_holds(*, session: AsyncSession, now: dt.datetime, limit: int = 500) -> list[Hold]:
    """Release pending holds past `expires_at` (status EXPIRED); returns the holds expired.

    Callers map them to their own objects by `hold.id` or `hold.reference`
    (e.g. a redemption becomes EXPIRED and emits `redemption.expired`).
    """
    holds = (
        (
            await session.execute(
                sa.select(Hold)
                .where(Hold.status == HoldStatus.PENDING, Hold.expires_at.is_not(None), Hold.expires_at <= now)
                .order_by(Hold.expires_at, Hold.id)
                .limit(limit)
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )
    expired = []
    for hold in holds:
        try:
            await _release(session, hold, HoldStatus.EXPIRED, f"hold of {hold.amount} points expired", now)
        except InvalidState:
            continue  # resolved meanwhile by someone else
        expired.append(hold)
    return expired


# ---------------------------------------------------------------- reading


async def account_entries(
    session: AsyncSession, account_id: int, *, limit: int, before_id: int | None = None
) -> list[LedgerEntry]:
    """An account's entries, newest first; `before_id` continues after the last one seen."""
    stmt = sa.select(LedgerEntry).where(LedgerEntry.account_id == account_id)
    if before_id is not None:
        stmt = stmt.where(LedgerEntry.id < before_id)
    stmt = stmt.order_by(LedgerEntry.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def wallet_lots(session: AsyncSession, account_id: int) -> list[Lot]:
    """A wallet's lots, oldest first (spending and expiry order)."""
    return list(
        (
            await session.execute(
                sa.select(Lot)
                .where(Lot.account_id == account_id)
                .order_by(*_lot_order())
                .execution_options(populate_existing=True)
            )
        ).scalars()
    )


__all__ = [
    "Balance",
    "Leg",
    "SEOUL",
    "account_balance",
    "account_entries",
    "breakage_account",
    "bulk_insert",
    "clearing_account",
    "create_hold",
    "expire_holds",
    "find_wallet",
    "get_account",
    "get_hold",
    "get_or_create_account",
    "issuance_account",
    "lot_expiry",
    "new_reference",
    "partner_account",
    "post",
    "Posting",
    "post_hold",
    "post_many",
    "post_transfer",
    "seoul_date",
    "void_hold",
    "wallet_account",
    "wallet_lots",
]
