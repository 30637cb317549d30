"""Campaigns: a sponsor's pledge to a beneficiary, and the commitment that walking builds.

What a caller may rely on
-------------------------
* **Status** follows the calendar in Asia/Seoul: SCHEDULED before `starts_on`, ACTIVE from
  `starts_on` through `ends_on`, ENDED after (`campaign_status`).
* **Who sees a campaign** (`visible_campaigns`, `can_see`): its SPONSOR, its BENEFICIARY,
  every OPERATOR (campaigns are offers operators enrol their members in, so they must be
  able to find them) and ADMIN. A MERCHANT sees none.
* **Joining** (`join_campaign`): an operator enrols one of its members (enrolled in the
  program first if new) in a SCHEDULED or ACTIVE campaign; an ENDED one raises
  `CampaignNotActive`. Joining twice changes nothing. Walking the member already recorded
  for dates within the campaign counts from the moment it joins.
* **Commitments** grow as walking arrives (`on_activity`, a listener of
  `gateway.activity.record_activities`, added by `register_listeners`, which the composition
  root calls: gateway/composition.py): walking on a date within the campaign's dates (the
  walk date, not the arrival date) by a participant adds to the campaign's exact total of
  metres, and the distance commitment is `floor(total_m x won_per_km / 1000)` (one rounding,
  so remainders carry and many days add up exactly). A participant whose steps within the
  dates reach `goal_steps` adds `won_per_achiever` once (`campaign.goal_reached`); a
  correction of walking corrects both, downwards too.
* **Budget**: `committed_won = distance_won + achievement_won + matched_won` never exceeds
  `budget_won`. A commitment that would pass it is cut to what is left, and
  `campaign.budget_exhausted` is emitted when the commitment reaches the budget. A cut part
  is not owed; if a correction later frees budget, the next commitment may use it.
* **Per-day figures** (`CampaignDay`): every change is also added to the open row of its walk
  date (participants, metres, won already cut), which statements read and seal, so the
  days of a statement always sum to its lines.
* **Ledger**: commitments are won, posted in unit "KRW" from the sponsor's "commitments"
  account to the beneficiary's (DONATE, or ADJUST the other way for a correction down). A
  match is posted with its donation, under the donation's reference. Walking commitments
  (kilometres and achievements) accrue in the per-day rows, the commitment journal, and are
  posted when a statement seals them (`gateway.statements`), one posting per campaign line:
  a posting for every walk of every participant would cost a batch of 1,000 records
  thousands of statements, where `record_activities` needs about fifteen. So the sponsor's
  KRW balance is minus what its issued statements and its matches amount to, and
  `committed_won` is that plus what accrues for periods not yet stated.

Cost: the listener calls of one batch share a working set per transaction (`_Work`). The
participations of every member of the batch come in one query (`on_activity.interested`,
which `record_activities` calls first, so that records of members in no campaign skip the
listener and its savepoint altogether); each campaign's row is read and locked once;
campaign figures, participants' figures and per-day deltas change in memory and are written
when the transaction commits, a few statements for the whole batch (`flush_commitments`
writes them earlier for a reader in the same transaction). A savepoint rolled back (a record
another listener rejects) takes its changes back with it.

Concurrency: every change to commitments takes one lock first (`lock_commitments`: a
PostgreSQL transaction-level advisory lock; SQLite serializes writers anyway). A campaign's
running total is one hot row by nature; taking the same lock first everywhere means two
operators' batches touching the same campaigns in different orders cannot deadlock.
Joining takes the operator's issuance-account lock before it (as `record_activities` does),
so a batch of that operator in flight is either fully counted by the join or sees the new
participant.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import activity, ledger
from gateway.db import utcnow
from gateway.errors import BudgetExhausted, CampaignNotActive, InvalidInput, MemberSuspended, NotFound
from gateway.members import enroll
from gateway.models import Account, ActivityRecord, EntryKind, Member, MemberStatus, Partner, PartnerKind
from gateway.models.campaigns import OPEN, Campaign, CampaignDay, CampaignParticipant, CampaignStatus
from gateway.outbox import emit
from gateway.partners import CODE_PATTERN

#: The unit of sponsors' commitments in the ledger.
KRW = "KRW"
COMMITMENTS = "commitments"

MAX_WON = 10**15
MAX_MATCH_RATIO = Decimal(100)
#: Key of the PostgreSQL advisory lock that serializes changes to commitments.
COMMITMENT_LOCK_KEY = 0x6D696C6563616D70  # "milecamp"
#: A batch does not load participations of campaigns that ended longer ago than this (walks
#: are accepted 400 days back by default; this leaves room for a longer setting).
HORIZON_DAYS = 1100


# ---------------------------------------------------------------- rounding rules (one function each)


def won_for_distance(metres: int, won_per_km: int) -> int:
    """Won for an exact total of metres: `floor(metres x won_per_km / 1000)`."""
    return metres * won_per_km // 1000 if metres > 0 else 0


def matched_won(won_value: int, match_ratio: Decimal) -> int:
    """A sponsor's match of a donation worth `won_value`: `floor(won_value x match_ratio)`."""
    return int((Decimal(won_value) * Decimal(match_ratio)).to_integral_value(rounding=ROUND_FLOOR))


def within_budget(due: int, committed: int, headroom: int) -> int:
    """What a component of the commitment becomes when it should be `due`, is `committed`
    now and `headroom` won are left in the budget: never more than the budget allows,
    and a decrease is always taken in full."""
    return min(due, committed + headroom)


def km(metres: int) -> Decimal:
    """Exact kilometres of a number of metres."""
    return (Decimal(metres) / 1000).normalize() if metres else Decimal(0)


# ---------------------------------------------------------------- calendar, visibility


def seoul_today(now: dt.datetime | None = None) -> dt.date:
    return ledger.seoul_date(now or utcnow())


def campaign_status(campaign: Campaign, today: dt.date) -> CampaignStatus:
    if today < campaign.starts_on:
        return CampaignStatus.SCHEDULED
    if today <= campaign.ends_on:
        return CampaignStatus.ACTIVE
    return CampaignStatus.ENDED


def _status_clause(status: CampaignStatus, today: dt.date):
    if status == CampaignStatus.SCHEDULED:
        return Campaign.starts_on > today
    if status == CampaignStatus.ACTIVE:
        return sa.and_(Campaign.starts_on <= today, Campaign.ends_on >= today)
    return Campaign.ends_on < today


def can_see(campaign: Campaign, *, partner_id: int, partner_kind: str) -> bool:
    """Tenancy of one campaign (see the module docstring)."""
    if partner_kind in ("ADMIN", "OPERATOR"):
        return True
    if partner_kind == "SPONSOR":
        return campaign.sponsor_id == partner_id
    if partner_kind == "BENEFICIARY":
        return campaign.beneficiary_id == partner_id
    return False


def visible_campaigns(
    *, partner_id: int, partner_kind: str, status: CampaignStatus | None = None, today: dt.date | None = None
) -> sa.Select:
    """The campaigns a partner may see, optionally of one status (order left to the caller)."""
    stmt = sa.select(Campaign)
    if partner_kind == "SPONSOR":
        stmt = stmt.where(Campaign.sponsor_id == partner_id)
    elif partner_kind == "BENEFICIARY":
        stmt = stmt.where(Campaign.beneficiary_id == partner_id)
    elif partner_kind not in ("ADMIN", "OPERATOR"):
        stmt = stmt.where(sa.false())
    if status is not None:
        stmt = stmt.where(_status_clause(CampaignStatus(status), today or seoul_today()))
    return stmt


async def get_campaign(session: AsyncSession, code: str) -> Campaign | None:
    """The campaign as it stands, this transaction's own commitments included."""
    await flush_commitments(session)
    return (
        await session.execute(
            sa.select(Campaign).where(Campaign.code == code).execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def require_campaign(session: AsyncSession, code: str, *, field: list[str] | None = None) -> Campaign:
    campaign = await get_campaign(session, code)
    if campaign is None:
        raise NotFound(f"No campaign with code {code!r}", field=field)
    return campaign


# ---------------------------------------------------------------- creating


def _check_won(value: int, name: str, *, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0) or value > MAX_WON:
        low = "1" if positive else "0"
        raise InvalidInput(f"{name} must be a whole number from {low} to {MAX_WON}", field=["input", name])
    return value


CODE_TAKEN = "This campaign code is taken; choose another (codes are shared by the whole program)"


async def create_campaign(
    *,
    session: AsyncSession,
    code: str,
    name: str,
    sponsor_code: str,
    beneficiary_code: str,
    starts_on: dt.date,
    ends_on: dt.date,
    won_per_km: int,
    goal_steps: int | None,
    won_per_achiever: int,
    match_ratio: Decimal,
    budget_won: int,
    now: dt.datetime | None = None,
) -> Campaign:
    """A new campaign of `sponsor_code` for `beneficiary_code` (the caller decides whether
    the calling partner may name that sponsor)."""
    now = now or utcnow()
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise InvalidInput("code must be a lowercase slug (a-z, 0-9, -), 2 to 63 characters", field=["input", "code"])
    if not name or not name.strip() or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters", field=["input", "name"])
    if ends_on < starts_on:
        raise InvalidInput("endsOn must not be before startsOn", field=["input", "endsOn"])
    if ends_on < seoul_today(now):
        raise InvalidInput("endsOn is in the past: the campaign would have ended already", field=["input", "endsOn"])
    _check_won(won_per_km, "wonPerKm")
    _check_won(won_per_achiever, "wonPerAchiever")
    _check_won(budget_won, "budgetWon", positive=True)
    if goal_steps is not None and (
        isinstance(goal_steps, bool) or not isinstance(goal_steps, int) or not 1 <= goal_steps <= 10**9
    ):
        raise InvalidInput("goalSteps must be a whole number from 1 to 1000000000", field=["input", "goalSteps"])
    if won_per_achiever > 0 and goal_steps is None:
        raise InvalidInput("wonPerAchiever needs goalSteps, the goal to reach", field=["input", "goalSteps"])
    match_ratio = Decimal(match_ratio)
    if not match_ratio.is_finite() or match_ratio < 0 or match_ratio > MAX_MATCH_RATIO:
        raise InvalidInput(f"matchRatio must be from 0 to {MAX_MATCH_RATIO}", field=["input", "matchRatio"])
    if match_ratio.as_tuple().exponent < -6:
        raise InvalidInput("matchRatio has at most 6 decimal places", field=["input", "matchRatio"])
    sponsor = await _partner(session, sponsor_code, PartnerKind.SPONSOR, ["input", "sponsorCode"])
    beneficiary = await _partner(session, beneficiary_code, PartnerKind.BENEFICIARY, ["input", "beneficiaryCode"])
    # Codes are program-wide (operators enrol and donate by code alone), so a taken code must
    # be refused; it is checked last and answered alike whoever holds it, so the answer
    # tells only what taking the code would: that it is taken (docs/sponsors.md).
    if await get_campaign(session, code) is not None:
        raise InvalidInput(CODE_TAKEN, field=["input", "code"])
    campaign = Campaign(
        code=code,
        name=name.strip(),
        sponsor_id=sponsor.id,
        beneficiary_id=beneficiary.id,
        starts_on=starts_on,
        ends_on=ends_on,
        won_per_km=won_per_km,
        goal_steps=goal_steps,
        won_per_achiever=won_per_achiever,
        match_ratio=match_ratio,
        budget_won=budget_won,
        participants=0,
        distance_m=0,
        distance_won=0,
        achievers=0,
        achievement_won=0,
        matched_won=0,
        committed_won=0,
        created_at=now,
    )
    try:
        async with session.begin_nested():  # a concurrent creation of the same code
            session.add(campaign)
            await session.flush()
    except sa.exc.IntegrityError:
        raise InvalidInput(CODE_TAKEN, field=["input", "code"]) from None
    await commitment_accounts(session, campaign)  # created now, off the hot path
    return campaign


async def _partner(session: AsyncSession, code: str | None, kind: PartnerKind, field: list[str]) -> Partner:
    partner = None
    if code:
        partner = (await session.execute(sa.select(Partner).where(Partner.code == code))).scalar_one_or_none()
    if partner is None or partner.kind != kind:
        raise NotFound(f"No {kind.value.lower()} with code {code!r}", field=field)
    return partner


# ---------------------------------------------------------------- locks, accounts, working set


async def lock_commitments(session: AsyncSession) -> None:
    """Take the commitments lock until the transaction ends (re-entrant; SQLite: no-op)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": COMMITMENT_LOCK_KEY})


async def commitment_accounts(session: AsyncSession, campaign: Campaign) -> tuple[Account, Account]:
    """(sponsor's, beneficiary's) KRW commitment accounts."""
    sponsor = await ledger.partner_account(session, campaign.sponsor_id, KRW, COMMITMENTS)
    beneficiary = await ledger.partner_account(session, campaign.beneficiary_id, KRW, COMMITMENTS)
    return sponsor, beneficiary


def commitment_posting(
    campaign: Campaign, delta_won: int, accounts: tuple[Account, Account], memo: str, reference: str | None = None
) -> ledger.Posting | None:
    """The ledger posting of a change of `delta_won` in what the sponsor owes (None for 0)."""
    sponsor, beneficiary = accounts
    if delta_won > 0:
        return ledger.Posting(EntryKind.DONATE, [ledger.Leg(sponsor, beneficiary, delta_won)], memo, reference)
    if delta_won < 0:
        return ledger.Posting(EntryKind.ADJUST, [ledger.Leg(beneficiary, sponsor, -delta_won)], memo, reference)
    return None


@dataclass
class _Figures:
    """A campaign's running figures within one transaction: changed in memory by every walk
    of the batch and written once, when the transaction commits (a campaign's row is hot:
    updating it for each of a batch's records would cost a statement each and, on
    PostgreSQL, a chain of row versions to walk)."""

    id: int
    code: str
    sponsor_id: int
    beneficiary_id: int
    starts_on: dt.date
    ends_on: dt.date
    won_per_km: int
    goal_steps: int | None
    won_per_achiever: int
    match_ratio: Decimal
    budget_won: int
    participants: int
    distance_m: int
    distance_won: int
    achievers: int
    achievement_won: int
    matched_won: int
    committed_won: int
    budget_exhausted_at: dt.datetime | None

    WRITTEN = (
        "participants",
        "distance_m",
        "distance_won",
        "achievers",
        "achievement_won",
        "matched_won",
        "committed_won",
        "budget_exhausted_at",
    )

    @classmethod
    def of(cls, row: Campaign) -> _Figures:
        return cls(**{f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})


@dataclass(eq=False)
class _Part:
    """A participant's counted walking within one transaction (written when it commits)."""

    id: int
    campaign_id: int
    member_id: int
    steps: int
    distance_m: int
    achieved_on: dt.date | None
    achievement_won: int
    dirty: bool = False


@dataclass
class _Work:
    """What commitment code holds in one database transaction; the listener calls of a batch
    share it, so a batch costs a few queries, not a few per record.

    Campaign figures, participants' figures and per-day deltas live here and are written
    when the transaction commits (`_write`, or `flush_commitments` for a reader in the same
    transaction): a handful of statements for the whole batch. A savepoint rolled back (a
    record rejected) takes its changes back: campaign figures and day deltas are
    snapshotted when each savepoint begins, participants' changes journaled, and both
    restored if it rolls back."""

    transaction: Any
    known: set[int] = field(default_factory=set)
    #: member id -> (participant, campaign id, starts_on, ends_on)
    participations: dict[int, list[tuple[_Part, int, dt.date, dt.date]]] = field(default_factory=dict)
    parts: dict[int, _Part] = field(default_factory=dict)
    #: (participant, attribute, value before): undone when a savepoint rolls back
    journal: list[tuple[_Part, str, Any]] = field(default_factory=list)
    campaigns: dict[int, _Figures] = field(default_factory=dict)
    #: (campaign id, walk date) -> deltas to add to that date's open row
    days: dict[tuple[int, dt.date], dict[str, int]] = field(default_factory=dict)
    locked: bool = False
    snapshots: dict[Any, tuple] = field(default_factory=dict)
    ended: tuple | None = None


def _snapshot(work: _Work) -> tuple:
    return (
        {cid: dataclasses.replace(f) for cid, f in work.campaigns.items()},
        {key: dict(deltas) for key, deltas in work.days.items()},
        work.locked,
        len(work.journal),
    )


def _restore(work: _Work, snapshot: tuple) -> None:
    work.campaigns, work.days, work.locked, mark = snapshot
    while len(work.journal) > mark:
        part, name, value = work.journal.pop()
        setattr(part, name, value)
        part.dirty = True  # it may have been written meanwhile (flush_commitments)


def _set(work: _Work, part: _Part, name: str, value) -> None:
    old = getattr(part, name)
    if old != value:
        work.journal.append((part, name, old))
        setattr(part, name, value)
        part.dirty = True


def _work(session: AsyncSession) -> _Work:
    sync = session.sync_session
    _listen(sync)
    transaction = sync.get_transaction()
    work = sync.info.get("campaign_work")
    if work is None or work.transaction is not transaction:
        work = sync.info["campaign_work"] = _Work(transaction)
    return work


def _current(sync) -> _Work | None:
    work = sync.info.get("campaign_work")
    return work if work is not None and work.transaction is sync.get_transaction() else None


def _listen(sync) -> None:
    if sync.info.get("campaign_events"):
        return
    sync.info["campaign_events"] = True
    event.listen(sync, "after_transaction_create", _on_create)
    event.listen(sync, "after_transaction_end", _on_end)
    event.listen(sync, "after_soft_rollback", _on_soft_rollback)
    event.listen(sync, "before_commit", _on_before_commit)


def _on_create(sync, transaction) -> None:
    work = _current(sync)
    if work is not None and transaction.nested:
        work.snapshots[transaction] = _snapshot(work)


def _on_end(sync, transaction) -> None:
    work = sync.info.get("campaign_work")
    if work is None:
        return
    if transaction.nested:
        # A rollback is announced right after the end (after_soft_rollback): keep its snapshot.
        work.ended = (transaction, work.snapshots.pop(transaction, None))
    elif transaction is work.transaction:
        sync.info.pop("campaign_work", None)


def _on_soft_rollback(sync, previous) -> None:
    work = sync.info.get("campaign_work")
    if work is None or not previous.nested or work.ended is None or work.ended[0] is not previous:
        return
    snapshot, work.ended = work.ended[1], None
    if snapshot is None:  # the work began inside the savepoint rolled back: none of it stands
        sync.info.pop("campaign_work", None)
    else:
        _restore(work, snapshot)


def _on_before_commit(sync) -> None:
    if sync.in_nested_transaction():
        return
    work = _current(sync)
    if work is not None:
        _write(sync, work)


def _write(sync, work: _Work) -> None:
    """Write the transaction's campaign figures, participants and per-day deltas (a few
    statements, whatever the number of records)."""
    parts = [p for p in work.parts.values() if p.dirty]
    if parts:
        p_t = CampaignParticipant.__table__
        sync.execute(
            sa.update(p_t)
            .where(p_t.c.id == sa.bindparam("p_id"))
            .values(
                steps=sa.bindparam("p_steps"),
                distance_m=sa.bindparam("p_distance_m"),
                achieved_on=sa.bindparam("p_achieved_on"),
                achievement_won=sa.bindparam("p_achievement_won"),
            ),
            [
                {
                    "p_id": p.id,
                    "p_steps": p.steps,
                    "p_distance_m": p.distance_m,
                    "p_achieved_on": p.achieved_on,
                    "p_achievement_won": p.achievement_won,
                }
                for p in parts
            ],
        )
        for p in parts:
            p.dirty = False
    if not sync.in_nested_transaction():
        work.journal = []  # nothing left to take back but the whole transaction
    t = Campaign.__table__
    for figures in work.campaigns.values():
        sync.execute(
            sa.update(t)
            .where(t.c.id == figures.id)
            .values(**{name: getattr(figures, name) for name in _Figures.WRITTEN})
        )
    d = CampaignDay.__table__
    for (campaign_id, date), deltas in work.days.items():
        deltas = {k: v for k, v in deltas.items() if v}
        if not deltas:
            continue
        updated = sync.execute(
            sa.update(d)
            .where(d.c.campaign_id == campaign_id, d.c.date == date, d.c.sealed_by == OPEN)
            .values(**{k: d.c[k] + v for k, v in deltas.items()})
        )
        if updated.rowcount == 0:
            row = dict(participants=0, distance_m=0, distance_won=0, achievers=0, achievement_won=0, matched_won=0)
            row.update(deltas)
            sync.execute(sa.insert(d).values(campaign_id=campaign_id, date=date, sealed_by=OPEN, **row))
    work.days = {}


async def flush_commitments(session: AsyncSession) -> None:
    """Write what this transaction has committed so far, for a reader in the same transaction
    (it happens anyway when the transaction commits)."""
    work = _current(session.sync_session)
    if work is not None:
        await session.run_sync(lambda sync: _write(sync, work))


async def _campaign(session: AsyncSession, work: _Work, campaign_id: int) -> _Figures:
    """The campaign's figures, its row locked for this transaction (after the commitments lock)."""
    if not work.locked:
        await lock_commitments(session)
        work.locked = True
    figures = work.campaigns.get(campaign_id)
    if figures is None:
        row = (
            await session.execute(
                sa.select(Campaign)
                .where(Campaign.id == campaign_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        figures = work.campaigns[campaign_id] = _Figures.of(row)
    return figures


async def _prefetch(session: AsyncSession, work: _Work, member_ids) -> None:
    """Load the participations of these members (those not loaded yet), in one query a 500."""
    ordered = sorted(set(member_ids) - work.known)
    if not ordered:
        return
    horizon = seoul_today() - dt.timedelta(days=HORIZON_DAYS)
    cp = CampaignParticipant.__table__
    for start in range(0, len(ordered), 500):
        rows = await session.execute(
            sa.select(
                cp.c.id,
                cp.c.campaign_id,
                cp.c.member_id,
                cp.c.steps,
                cp.c.distance_m,
                cp.c.achieved_on,
                cp.c.achievement_won,
                Campaign.starts_on,
                Campaign.ends_on,
            )
            .join(Campaign, Campaign.id == cp.c.campaign_id)
            .where(cp.c.member_id.in_(ordered[start : start + 500]), Campaign.ends_on >= horizon)
            .order_by(cp.c.campaign_id)
        )
        for row in rows:
            part = work.parts.get(row.id)  # already held (joined in this transaction): keep it
            if part is None:
                part = work.parts[row.id] = _Part(
                    row.id,
                    row.campaign_id,
                    row.member_id,
                    row.steps,
                    row.distance_m,
                    row.achieved_on,
                    row.achievement_won,
                )
            work.participations.setdefault(part.member_id, []).append(
                (part, part.campaign_id, row.starts_on, row.ends_on)
            )
    work.known.update(ordered)


async def _participations(session: AsyncSession, work: _Work, member_id: int):
    """The member's participations. Usually loaded already (`interested`, called by
    record_activities with the whole batch); otherwise loaded with those of every member the
    session holds, the batch at hand."""
    if member_id not in work.known:
        held = [
            obj.id
            for obj in list(session.sync_session.identity_map.values())
            if isinstance(obj, Member) and obj.id is not None
        ]
        await _prefetch(session, work, [member_id, *held])
    return work.participations.get(member_id, [])


def _add_to_day(work: _Work, campaign_id: int, date: dt.date, **deltas: int) -> None:
    pending = work.days.setdefault((campaign_id, date), {})
    for name, value in deltas.items():
        if value:
            pending[name] = pending.get(name, 0) + value


async def _note_budget(session: AsyncSession, campaign: _Figures, before: int, now: dt.datetime) -> None:
    """Emit campaign.budget_exhausted when the commitment has just reached the budget."""
    if campaign.committed_won >= campaign.budget_won and before < campaign.budget_won:
        campaign.budget_exhausted_at = now
        await emit(
            session=session,
            type="campaign.budget_exhausted",
            partner_ids=[campaign.sponsor_id, campaign.beneficiary_id],
            data={
                "campaign": campaign.code,
                "budgetWon": str(campaign.budget_won),
                "committedWon": str(campaign.committed_won),
                "distanceWon": str(campaign.distance_won),
                "achievementWon": str(campaign.achievement_won),
                "matchedWon": str(campaign.matched_won),
            },
            now=now,
        )
    elif campaign.committed_won < campaign.budget_won:
        campaign.budget_exhausted_at = None


# ---------------------------------------------------------------- walking -> commitments


def _walked(figures) -> bool:
    return figures is not None and (figures.steps > 0 or figures.distance_meters > 0)


async def _apply_walk(
    session: AsyncSession,
    work: _Work,
    campaign: _Figures,
    participant: _Part,
    member: Member,
    date: dt.date,
    old,
    new,
    now: dt.datetime,
) -> int:
    """Count one day's change of a participant's walking; returns the change in won committed."""
    d_m = new.distance_meters - (old.distance_meters if old is not None else 0)
    d_steps = new.steps - (old.steps if old is not None else 0)
    d_participants = int(_walked(new)) - int(_walked(old))
    before = campaign.committed_won

    if d_m:
        campaign.distance_m += d_m
        distance_won = within_budget(
            won_for_distance(campaign.distance_m, campaign.won_per_km),
            campaign.distance_won,
            campaign.budget_won - campaign.committed_won,
        )
        d_won = distance_won - campaign.distance_won
        if d_won:
            campaign.distance_won = distance_won
            campaign.committed_won += d_won
        _set(work, participant, "distance_m", participant.distance_m + d_m)
    else:
        d_won = 0
    if d_steps:
        _set(work, participant, "steps", participant.steps + d_steps)
    _add_to_day(work, campaign.id, date, participants=d_participants, distance_m=d_m, distance_won=d_won)

    if campaign.goal_steps:
        reached = participant.steps >= campaign.goal_steps
        if reached and participant.achieved_on is None:
            won = within_budget(campaign.won_per_achiever, 0, campaign.budget_won - campaign.committed_won)
            _set(work, participant, "achieved_on", date)
            _set(work, participant, "achievement_won", won)
            campaign.achievers += 1
            campaign.achievement_won += won
            campaign.committed_won += won
            _add_to_day(work, campaign.id, date, achievers=1, achievement_won=won)
            await _goal_reached(session, campaign, member, date, won, now)
        elif not reached and participant.achieved_on is not None:
            won = participant.achievement_won
            _add_to_day(work, campaign.id, participant.achieved_on, achievers=-1, achievement_won=-won)
            campaign.achievers -= 1
            campaign.achievement_won -= won
            campaign.committed_won -= won
            _set(work, participant, "achieved_on", None)
            _set(work, participant, "achievement_won", 0)
    await _note_budget(session, campaign, before, now)
    return campaign.committed_won - before


async def _goal_reached(session, campaign: _Figures, member: Member, date: dt.date, won: int, now: dt.datetime) -> None:
    data = {
        "campaign": campaign.code,
        "date": date.isoformat(),
        "goalSteps": str(campaign.goal_steps),
        "achievementWon": str(won),
        "achievers": str(campaign.achievers),
        "committedWon": str(campaign.committed_won),
    }
    operator_code = await session.scalar(sa.select(Partner.code).where(Partner.id == member.operator_id))
    # The sponsor and the beneficiary learn that a participant reached the goal; only the
    # member's own operator learns which member it was.
    await emit(
        session=session,
        type="campaign.goal_reached",
        partner_ids=[campaign.sponsor_id, campaign.beneficiary_id],
        data={**data, "operator": operator_code},
        now=now,
    )
    await emit(
        session=session,
        type="campaign.goal_reached",
        partner_ids=[member.operator_id],
        data={**data, "operator": operator_code, "memberExternalId": member.external_id},
        now=now,
    )


async def on_activity(*, session: AsyncSession, member: Member, date: dt.date, old, new) -> None:
    """`gateway.activity` listener: a participant's day was credited or corrected."""
    work = _work(session)
    relevant = [
        (p, cid) for p, cid, first, last in await _participations(session, work, member.id) if first <= date <= last
    ]
    if not relevant:
        return
    now = utcnow()
    for participant, campaign_id in relevant:
        campaign = await _campaign(session, work, campaign_id)
        await _apply_walk(session, work, campaign, participant, member, date, old, new, now)


async def _interested(session: AsyncSession, member_ids: list[int]) -> set[int]:
    """`record_activities` asks first which members of a batch the listener cares about: those
    taking part in a campaign (their participations are loaded for the calls that follow)."""
    work = _work(session)
    await _prefetch(session, work, member_ids)
    return {m for m in member_ids if work.participations.get(m)}


on_activity.interested = _interested  # type: ignore[attr-defined]


def register_listeners(listeners: list[activity.Listener]) -> None:
    """Make commitments grow with walking: add `on_activity` to `listeners` (once)."""
    if on_activity not in listeners:
        listeners.append(on_activity)


# ---------------------------------------------------------------- joining


async def join_campaign(
    *,
    session: AsyncSession,
    operator_id: int,
    member_external_id: str,
    campaign_code: str,
    now: dt.datetime | None = None,
) -> Campaign:
    """Enrol the operator's member in the campaign (see the module docstring)."""
    now = now or utcnow()
    found = await require_campaign(session, campaign_code, field=["input", "campaignCode"])
    if campaign_status(found, seoul_today(now)) == CampaignStatus.ENDED:
        raise CampaignNotActive(
            f"Campaign {campaign_code!r} ended on {found.ends_on.isoformat()}", field=["input", "campaignCode"]
        )
    # Same order as record_activities: the operator's issuance account, then commitments.
    issuance = await ledger.issuance_account(session, operator_id)
    await session.execute(sa.select(Account.id).where(Account.id == issuance.id).with_for_update())
    member = await enroll(session=session, operator_id=operator_id, external_id=member_external_id, now=now)
    if member.status != MemberStatus.ACTIVE:
        raise MemberSuspended(f"the member is {member.status.value}", field=["input", "memberExternalId"])
    work = _work(session)
    campaign = await _campaign(session, work, found.id)
    exists = await session.scalar(
        sa.select(CampaignParticipant.id).where(
            CampaignParticipant.campaign_id == campaign.id, CampaignParticipant.member_id == member.id
        )
    )
    if exists is not None:
        return await get_campaign(session, campaign.code)
    row = CampaignParticipant(
        campaign_id=campaign.id, member_id=member.id, steps=0, distance_m=0, achievement_won=0, joined_at=now
    )
    session.add(row)
    campaign.participants += 1
    await session.flush()
    participant = work.parts[row.id] = _Part(row.id, campaign.id, member.id, 0, 0, None, 0)
    if member.id in work.known:
        work.participations.setdefault(member.id, []).append(
            (participant, campaign.id, campaign.starts_on, campaign.ends_on)
        )
    # Walking already recorded within the campaign's dates counts, in date order (so a goal
    # is reached on the day the steps first add up to it).
    records = (
        (
            await session.execute(
                sa.select(ActivityRecord)
                .where(
                    ActivityRecord.member_id == member.id,
                    ActivityRecord.date >= campaign.starts_on,
                    ActivityRecord.date <= campaign.ends_on,
                )
                .order_by(ActivityRecord.date)
            )
        )
        .scalars()
        .all()
    )
    for record in records:
        walked = activity.ActivityFigures(record.steps, record.distance_meters, record.points_credited)
        await _apply_walk(session, work, campaign, participant, member, record.date, None, walked, now)
    await session.flush()
    return await get_campaign(session, campaign.code)


# ---------------------------------------------------------------- matching donations


async def match_donation(
    *, session: AsyncSession, campaign: Campaign, won_value: int, reference: str, now: dt.datetime
) -> int:
    """Commit the sponsor's match of a donation worth `won_value` (returns the won matched)
    and post it in the ledger under the donation's `reference`.

    CampaignNotActive outside the campaign's dates; BudgetExhausted when a match is due and
    nothing is left of the budget (a partial match is cut to what is left).
    """
    if campaign_status(campaign, seoul_today(now)) != CampaignStatus.ACTIVE:
        raise CampaignNotActive(f"Campaign {campaign.code!r} is not active", field=["input", "campaignCode"])
    work = _work(session)
    campaign = await _campaign(session, work, campaign.id)
    due = matched_won(won_value, campaign.match_ratio)
    headroom = campaign.budget_won - campaign.committed_won
    if due > 0 and headroom <= 0:
        raise BudgetExhausted(
            f"Campaign {campaign.code!r} has no budget left to match donations", field=["input", "campaignCode"]
        )
    won = within_budget(due, 0, headroom)
    if won == 0:
        return 0
    before = campaign.committed_won
    campaign.matched_won += won
    campaign.committed_won += won
    _add_to_day(work, campaign.id, seoul_today(now), matched_won=won)
    posting = commitment_posting(
        campaign,
        won,
        await commitment_accounts(session, campaign),
        f"campaign {campaign.code}: match of a donation",
        reference,
    )
    await ledger.post_many(session=session, postings=[posting], now=now)
    await _note_budget(session, campaign, before, now)
    await session.flush()
    return won


__all__ = [
    "KRW",
    "campaign_status",
    "can_see",
    "commitment_accounts",
    "commitment_posting",
    "create_campaign",
    "flush_commitments",
    "get_campaign",
    "join_campaign",
    "km",
    "lock_commitments",
    "match_donation",
    "matched_won",
    "on_activity",
    "register_listeners",
    "require_campaign",
    "seoul_today",
    "visible_campaigns",
    "within_budget",
    "won_for_distance",
]
