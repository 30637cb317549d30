"""Walking activity becomes mileage.

An activity is a member's walking total for one day (Asia/Seoul). `record_activities` takes
an operator's batch (at most 1,000 records; more raises `LimitExceeded` and records nothing)
and answers each record on its own, in input order; one record failing never fails the rest
(each runs in a SAVEPOINT):

* CREDITED - a new day: points under the operator's earning rule, as an EARN.
* CAPPED - a new day over the daily cap: credited up to the cap.
* ADJUSTED - a day already reported, with other figures: only the difference is credited
  (ADJUST, up) or debited (ADJUST, down; at most what the member still has available, the
  reason says when less was taken back).
* UNCHANGED - the same figures again: nothing happens, so a resent batch never credits twice.
* REJECTED - with a reason, credits nothing: a date in the future (beyond a few minutes of
  clock skew) or older than `backdate_days`, figures out of the plausible range (too many
  steps, a stride outside [min, max] metres), or a member who is not ACTIVE.

Points: floor(distance km x points_per_km), at most `daily_cap`, then x the walking-day
multiplier on the operator's walking day (the 11th). Lots expire `expiry_months` after they are
credited. Members not yet known are enrolled by their first acceptable record.

Each credited or corrected day writes an `activity.credited` event for the operator and calls
every function in `listeners` (campaign commitments hook in there: the composition root,
gateway/composition.py, calls `campaigns.register_listeners(listeners)`; this module imports
no listener), each record's calls in a SAVEPOINT of their own:
`await listener(session=, member=, date=, old=ActivityFigures | None, new=ActivityFigures)`.
`old` is the day as recorded before (None for a new day), `new` the accepted figures and the
points the day now earns. A listener raising a DomainError rejects that record (what the
listener did is rolled back, and the record credits nothing). Listeners run while the batch is
planned, before its ledger and activity rows are written in bulk: they get the figures as
arguments rather than reading `activity_records`.

Performance: the batch is planned in memory and written with a fixed number of bulk
statements (about fifteen, whatever its size), so a 1,000-record batch costs milliseconds of
database round trips rather than thousands of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import ledger
from gateway.db import utcnow
from gateway.errors import DomainError, LimitExceeded
from gateway.members import EXTERNAL_ID_MAX, enroll
from gateway.models.activity import ActivityRecord, ActivityStatus, EarningRule
from gateway.models.ledger import Account, EntryKind, OwnerKind
from gateway.models.members import Member, MemberStatus
from gateway.outbox import emit_many

MAX_BATCH = 1000
#: How far ahead of the gateway's clock a walk's date may be (devices' clocks drift).
CLOCK_SKEW = dt.timedelta(minutes=5)
SOURCE_MAX = 64


@dataclass(frozen=True)
class ActivityIn:
    member_external_id: str
    date: dt.date
    steps: int
    distance_meters: int
    source: str | None = None


@dataclass(frozen=True)
class ActivityOutcome:
    member_external_id: str
    date: dt.date
    status: ActivityStatus
    #: Signed: points credited, or for a downward correction debited, by this record.
    points_credited: int
    reason: str | None = None
    #: The ledger movement's reference, when points moved.
    reference: str | None = None


@dataclass(frozen=True)
class ActivityFigures:
    steps: int
    distance_meters: int
    #: Points the day has earned under the rules.
    points_credited: int


class Listener(Protocol):
    """Told of each credited, capped or adjusted record; see the module docstring.

    It may also carry `interested(session, member_ids) -> set[int]` (see `_listening_members`)."""

    async def __call__(
        self, *, session: AsyncSession, member: Member, date: dt.date, old: ActivityFigures | None, new: ActivityFigures
    ) -> None: ...


#: The listeners of every batch, filled by the composition root (gateway/composition.py).
listeners: list[Listener] = []


async def _listening_members(session: AsyncSession, member_ids: list[int]) -> set[int] | None:
    """The members of a batch some listener cares about; None for all of them.

    A listener may carry `interested(session, member_ids) -> set[int]` (e.g. the members
    who take part in a campaign), so that the batch pays a SAVEPOINT and a listener call
    only for those: for most records there is nothing to do."""
    if not listeners:
        return set()
    found: set[int] = set()
    for listener in listeners:
        interested = getattr(listener, "interested", None)
        if interested is None:
            return None
        found |= await interested(session, member_ids)
    return found


# ---------------------------------------------------------------- rules


async def earning_rule(session: AsyncSession, operator_id: int) -> EarningRule:
    """The operator's earning rule, or an unsaved one with the program defaults."""
    rule = (
        await session.execute(sa.select(EarningRule).where(EarningRule.operator_id == operator_id))
    ).scalar_one_or_none()
    return rule or EarningRule.default(operator_id)


async def set_earning_rule(
    *, session: AsyncSession, operator_id: int, now: dt.datetime | None = None, **fields
) -> EarningRule:
    """Create or change an operator's earning rule (fields as on EarningRule)."""
    rule = (
        await session.execute(sa.select(EarningRule).where(EarningRule.operator_id == operator_id))
    ).scalar_one_or_none()
    if rule is None:
        rule = EarningRule.default(operator_id)
        session.add(rule)
    for name, value in fields.items():
        if not hasattr(EarningRule, name) or name in {"id", "operator_id"}:
            raise TypeError(f"unknown earning rule field {name!r}")
        setattr(rule, name, value)
    rule.updated_at = now or utcnow()
    await session.flush()
    return rule


def floor_points(value: Decimal) -> int:
    """The one rounding rule for points earned: down to a whole point."""
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def is_walking_day(rule: EarningRule, day: dt.date) -> bool:
    return bool(rule.walking_day) and day.day == rule.walking_day


def points_for(rule: EarningRule, day: dt.date, distance_meters: int) -> tuple[int, bool]:
    """(points a day's walk earns, whether the daily cap cut them)."""
    base = floor_points(Decimal(distance_meters) * Decimal(rule.points_per_km) / 1000)
    capped = base > rule.daily_cap
    base = min(base, rule.daily_cap)
    if is_walking_day(rule, day):
        return floor_points(base * Decimal(rule.walking_day_multiplier)), capped
    return base, capped


def implausibility(rule: EarningRule, steps: int, distance_meters: int) -> str | None:
    """Why these figures cannot be one person's walking in a day, or None."""
    if steps > rule.max_steps_per_day:
        return f"more than {rule.max_steps_per_day} steps in a day"
    if steps == 0 and distance_meters == 0:
        return None
    if steps == 0 or distance_meters == 0:
        return "distance and steps do not match (one of them is zero)"
    stride = Decimal(distance_meters) / steps
    if stride < Decimal(rule.min_stride_m) or stride > Decimal(rule.max_stride_m):
        return f"a stride of {stride.quantize(Decimal('0.01'))} m is outside {rule.min_stride_m}-{rule.max_stride_m} m"
    return None


def _input_problem(record: ActivityIn, *, today: dt.date, latest: dt.date, backdate_days: int) -> str | None:
    if not isinstance(record.member_external_id, str) or not record.member_external_id.strip():
        return "memberExternalId is empty"
    if len(record.member_external_id) > EXTERNAL_ID_MAX:
        return f"memberExternalId is longer than {EXTERNAL_ID_MAX} characters"
    if not isinstance(record.date, dt.date) or isinstance(record.date, dt.datetime):
        return "date is not a calendar day"
    for name, value in (("steps", record.steps), ("distanceMeters", record.distance_meters)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{name} must be a whole number, zero or more"
    if record.source is not None and len(record.source) > SOURCE_MAX:
        return f"source is longer than {SOURCE_MAX} characters"
    if record.date > latest:
        return "the date is in the future"
    if record.date < today - dt.timedelta(days=backdate_days):
        return f"the date is more than {backdate_days} days back"
    return None


# ---------------------------------------------------------------- recording


@dataclass
class _Day:
    """A day's record as planned during the batch (written in bulk at the end)."""

    id: int | None
    steps: int
    distance_meters: int
    source: str | None
    points_credited: int
    reference: str | None
    dirty: bool = False


async def record_activities(
    *,
    session: AsyncSession,
    operator_id: int,
    records: Sequence[ActivityIn],
    now: dt.datetime,
    backdate_days: int = 400,
) -> list[ActivityOutcome]:
    """Record an operator's batch; one outcome per record, in input order (see module doc).

    The batch is planned record by record in memory (each record's outcome depends only on the
    records before it), then written with a handful of bulk statements: members, wallets,
    ledger transactions, entries, lots, activity rows and events. A record that fails is
    left out of the plan, so it changes nothing; listeners run in a SAVEPOINT per record.
    """
    if len(records) > MAX_BATCH:
        raise LimitExceeded(f"at most {MAX_BATCH} activities per request", field=["input", "activities"])
    if not records:
        return []
    rule = await earning_rule(session, operator_id)
    unit = await ledger.operator_unit(session, operator_id)
    issuance = await ledger.issuance_account(session, operator_id)
    # Batches of one operator take the issuance account's lock first, so they queue up
    # instead of deadlocking on wallets each of them holds.
    await session.execute(sa.select(Account.id).where(Account.id == issuance.id).with_for_update())
    expires_at = ledger.lot_expiry(now, rule.expiry_months)
    today = ledger.seoul_date(now)
    latest = ledger.seoul_date(now + CLOCK_SKEW)

    outcomes: list[ActivityOutcome | None] = [None] * len(records)
    valid: list[int] = []
    for index, record in enumerate(records):
        problem = _input_problem(record, today=today, latest=latest, backdate_days=backdate_days)
        if problem is None:
            problem = implausibility(rule, record.steps, record.distance_meters)
        if problem is not None:
            outcomes[index] = _rejected(record, problem)
        else:
            valid.append(index)
    if not valid:
        return outcomes  # type: ignore[return-value]

    members = await _enroll_all(session, operator_id, {records[i].member_external_id for i in valid}, now)
    wallets = await _wallets(session, list(members.values()), unit)
    available = {w.id: w.available for w in wallets.values()}
    days = await _days(session, [m.id for m in members.values()], {records[i].date for i in valid})
    listening = await _listening_members(session, [m.id for m in members.values()])

    postings: list[ledger.Posting] = []
    events: list[tuple[str, list[int], dict]] = []
    for index in valid:
        record = records[index]
        member = members[record.member_external_id]
        if member.status != MemberStatus.ACTIVE:
            outcomes[index] = _rejected(record, f"the member is {member.status.value}")
            continue
        key = (member.id, record.date)
        day = days.get(key)
        if day is not None and (day.steps, day.distance_meters) == (record.steps, record.distance_meters):
            outcomes[index] = ActivityOutcome(
                record.member_external_id, record.date, ActivityStatus.UNCHANGED, 0, reference=day.reference
            )
            continue

        points, capped = points_for(rule, record.date, record.distance_meters)
        delta = points - (day.points_credited if day is not None else 0)
        wallet = wallets[member.id]
        kind = EntryKind.EARN if day is None else EntryKind.ADJUST
        memo = _memo(record, points, rule, day is not None)
        posting, moved, reason = None, 0, None
        if delta > 0:
            leg = ledger.Leg(
                issuance,
                wallet,
                delta,
                lot_expires_at=expires_at,
                earned_on=record.date,
                never_expires=expires_at is None,
            )
            posting, moved = ledger.Posting(kind, [leg], memo, ledger.new_reference()), delta
        elif delta < 0:
            take = min(-delta, available[wallet.id])
            if take > 0:
                posting = ledger.Posting(kind, [ledger.Leg(wallet, issuance, take)], memo, ledger.new_reference())
                moved = -take
            if take < -delta:
                reason = f"{-delta - take} of the {-delta} points to take back were already spent"
        if capped and reason is None:
            reason = f"credited up to the daily cap of {rule.daily_cap} points"
        status = (
            ActivityStatus.ADJUSTED
            if day is not None
            else (ActivityStatus.CAPPED if capped else ActivityStatus.CREDITED)
        )
        old = None if day is None else ActivityFigures(day.steps, day.distance_meters, day.points_credited)
        new = ActivityFigures(record.steps, record.distance_meters, points)
        if listeners and (listening is None or member.id in listening):
            try:
                async with session.begin_nested():
                    for listener in listeners:
                        await listener(session=session, member=member, date=record.date, old=old, new=new)
            except DomainError as exc:
                outcomes[index] = _rejected(record, exc.message)
                continue

        # The record is accepted: commit it to the plan.
        reference = posting.reference if posting else None
        if day is None:
            day = days[key] = _Day(None, 0, 0, None, 0, None)
        day.steps, day.distance_meters, day.source = record.steps, record.distance_meters, record.source
        day.points_credited, day.reference, day.dirty = points, reference or day.reference, True
        available[wallet.id] += moved
        if posting is not None:
            postings.append(posting)
        events.append(
            (
                "activity.credited",
                [operator_id],
                {
                    "memberExternalId": member.external_id,
                    "date": record.date.isoformat(),
                    "status": status.value,
                    "steps": record.steps,
                    "distanceMeters": record.distance_meters,
                    "pointsCredited": str(moved),
                    "reference": reference,
                },
            )
        )
        outcomes[index] = ActivityOutcome(record.member_external_id, record.date, status, moved, reason, reference)

    await ledger.post_many(session=session, postings=postings, now=now)
    await _write_days(session, days, now)
    await emit_many(session=session, events=events, now=now)
    return outcomes  # type: ignore[return-value]


def _rejected(record: ActivityIn, reason: str) -> ActivityOutcome:
    return ActivityOutcome(
        member_external_id=str(record.member_external_id),
        date=record.date,
        status=ActivityStatus.REJECTED,
        points_credited=0,
        reason=reason,
    )


def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _enroll_all(
    session: AsyncSession, operator_id: int, external_ids: set[str], now: dt.datetime
) -> dict[str, Member]:
    """The operator's members by externalId, enrolling those not yet known."""
    found: dict[str, Member] = {}
    for chunk in _chunks(sorted(external_ids)):
        for member in (
            await session.execute(
                sa.select(Member)
                .where(Member.operator_id == operator_id, Member.external_id.in_(chunk))
                .execution_options(populate_existing=True)
            )
        ).scalars():
            found[member.external_id] = member
    missing = sorted(external_ids - found.keys())
    if missing:
        rows = [
            dict(operator_id=operator_id, external_id=x, status=MemberStatus.ACTIVE, enrolled_at=now, updated_at=now)
            for x in missing
        ]
        try:
            async with session.begin_nested():
                ids = await ledger.bulk_insert(session, Member, rows)
            for chunk in _chunks(ids):
                for member in (await session.execute(sa.select(Member).where(Member.id.in_(chunk)))).scalars():
                    found[member.external_id] = member
        except IntegrityError:  # enrolled meanwhile elsewhere: one by one, race-safe
            for external_id in missing:
                found[external_id] = await enroll(
                    session=session, operator_id=operator_id, external_id=external_id, now=now
                )
    return found


async def _wallets(session: AsyncSession, members: list[Member], unit: str) -> dict[int, Account]:
    """The members' wallets, created where missing, locked (in id order) for this transaction."""
    ids = sorted(m.id for m in members)
    missing = set(ids)
    for chunk in _chunks(ids):
        missing -= set(
            (
                await session.execute(
                    sa.select(Account.owner_id).where(
                        Account.owner_kind == OwnerKind.MEMBER, Account.owner_id.in_(chunk), Account.purpose == "wallet"
                    )
                )
            ).scalars()
        )
    if missing:
        rows = [
            dict(
                owner_kind=OwnerKind.MEMBER,
                owner_id=member_id,
                unit=unit,
                purpose="wallet",
                available=0,
                held=0,
                allow_negative=False,
                has_lots=True,
                created_at=utcnow(),
            )
            for member_id in sorted(missing)
        ]
        try:
            async with session.begin_nested():
                await session.execute(sa.insert(Account), rows)
        except IntegrityError:
            for member in members:
                if member.id in missing:
                    await ledger.wallet_account(session, member, unit=unit)
    wallets: dict[int, Account] = {}
    for chunk in _chunks(ids):
        for account in (
            await session.execute(
                sa.select(Account)
                .where(Account.owner_kind == OwnerKind.MEMBER, Account.owner_id.in_(chunk), Account.purpose == "wallet")
                .order_by(Account.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalars():
            wallets[account.owner_id] = account
    return wallets


async def _days(session: AsyncSession, member_ids: list[int], dates: set[dt.date]) -> dict[tuple[int, dt.date], _Day]:
    t = ActivityRecord.__table__
    days: dict[tuple[int, dt.date], _Day] = {}
    for chunk in _chunks(sorted(member_ids)):
        rows = await session.execute(
            sa.select(
                t.c.id,
                t.c.member_id,
                t.c.date,
                t.c.steps,
                t.c.distance_meters,
                t.c.source,
                t.c.points_credited,
                t.c.reference,
            ).where(t.c.member_id.in_(chunk), t.c.date.in_(sorted(dates)))
        )
        for r in rows:
            days[(r.member_id, r.date)] = _Day(
                r.id, r.steps, r.distance_meters, r.source, r.points_credited, r.reference
            )
    return days


async def _write_days(session: AsyncSession, days: dict[tuple[int, dt.date], _Day], now: dt.datetime) -> None:
    inserts, updates = [], []
    for (member_id, date), day in days.items():
        if not day.dirty:
            continue
        values = dict(
            steps=day.steps,
            distance_meters=day.distance_meters,
            source=day.source,
            points_credited=day.points_credited,
            reference=day.reference,
            updated_at=now,
        )
        if day.id is None:
            inserts.append(dict(member_id=member_id, date=date, created_at=now, **values))
        else:
            updates.append(dict(id=day.id, **values))
    if inserts:
        await session.execute(sa.insert(ActivityRecord), inserts)
    if updates:
        await session.execute(sa.update(ActivityRecord), updates)  # ORM bulk UPDATE by primary key


def _memo(record: ActivityIn, points: int, rule: EarningRule, correction: bool) -> str:
    what = "corrected walk" if correction else "walk"
    extra = " (walking day)" if is_walking_day(rule, record.date) else ""
    return f"{what} of {record.date.isoformat()}: {record.steps} steps, {record.distance_meters} m = {points} points{extra}"


__all__ = [
    "ActivityFigures",
    "ActivityIn",
    "ActivityOutcome",
    "MAX_BATCH",
    "earning_rule",
    "implausibility",
    "Listener",
    "listeners",
    "points_for",
    "record_activities",
    "set_earning_rule",
]
