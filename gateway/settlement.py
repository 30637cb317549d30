"""Settlement between operators: periods, closing, signed documents, confirmation.

What a caller may rely on
-------------------------
* **Periods** follow the agreement's `settlement_period` from `starts_on`, in Asia/Seoul
  days: DAILY (one day), WEEKLY (7 days from `starts_on`), MONTHLY (calendar months; the
  first runs from `starts_on` to the end of its month). The last period ends on `ends_on`.
  `period_containing(agreement, day)`, `first_period`, `next_period`.
* **Closing** (`close_settlement`, and `close_due` / `close_due_settlements` for the
  scheduler) seals every flow of the agreement not yet settled and dated before
  `min(closing time, end of the period)`. Periods close in order: closing one first closes
  every earlier period still open. A flow that arrives later, dated inside a closed period,
  is sealed by the next period to close ("late movements go to the next open period").
  At most one period per agreement is OPEN at a time: the first one not closed.
* A closed settlement has one **line** per flow kind and direction that had movements
  (count, gross, fee, net; the fee was computed per movement by the service that wrote
  the flow), and the **net**: each direction sums its lines' `net_won`; the operator with
  the larger sum is `net_payer` and owes the difference (`net_won`); payer and payee are
  None when it nets to zero.
* The **document** is stored at closing (RFC 8785 bytes, SHA-256 `digest`, detached JWS
  `signature`) and never changes. `document_for` rebuilds the same dictionary.
* **Confirmation**: `confirm_settlement` needs the operator's own digest of the document
  (`DigestMismatch` otherwise); `dispute_settlement` records a reason. Both operators
  confirmed = CONFIRMED; any standing dispute = DISPUTED; else CLOSED. A confirmation
  withdraws that operator's earlier dispute. A CONFIRMED settlement cannot be disputed.

Functions run inside the caller's transaction and never commit (except the scheduler's
`close_due_settlements`, which opens one transaction per agreement).
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import documents
from gateway.db import Database, utcnow
from gateway.errors import DigestMismatch, InvalidInput, InvalidState, NotFound
from gateway.ids import encode_id
from gateway.models.partners import Agreement, Partner, SettlementPeriod
from gateway.models.settlement import (
    FlowKind,
    Settlement,
    SettlementFlow,
    SettlementLine,
    SettlementResponse,
    SettlementResponseKind,
    SettlementStatus,
)
from gateway.outbox import emit

log = logging.getLogger(__name__)

SEOUL = ZoneInfo("Asia/Seoul")
CURRENCY = "KRW"
REASON_MAX = 2000
KIND_ORDER = {FlowKind.CROSS_REDEMPTION: 0, FlowKind.CROSS_REFUND: 1, FlowKind.EXCHANGE: 2}


# ---------------------------------------------------------------- the period calendar


def record_flow(
    session: AsyncSession,
    *,
    agreement_id: int,
    kind: FlowKind,
    payer_id: int,
    payee_id: int,
    reference: str,
    gross_won: int,
    fee_won: int,
    now: dt.datetime,
) -> SettlementFlow:
    """Note one cross-program movement for settlement, in the caller's transaction: the
    payer keeps the fee and owes `gross_won - fee_won` (the contract's Fees decision)."""
    flow = SettlementFlow(
        agreement_id=agreement_id,
        kind=kind,
        payer_id=payer_id,
        payee_id=payee_id,
        reference=reference,
        gross_won=gross_won,
        fee_won=fee_won,
        net_won=gross_won - fee_won,
        occurred_at=now,
        created_at=now,
    )
    session.add(flow)
    return flow


def seoul_date(instant: dt.datetime) -> dt.date:
    return instant.astimezone(SEOUL).date()


def seoul_midnight(day: dt.date) -> dt.datetime:
    """The instant a Seoul day begins, in UTC."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=SEOUL).astimezone(dt.UTC)


@dataclass(frozen=True, order=True)
class Period:
    start: dt.date
    end: dt.date

    @property
    def starts_at(self) -> dt.datetime:
        return seoul_midnight(self.start)

    @property
    def ends_at(self) -> dt.datetime:
        """The first instant after the period (midnight in Seoul after `end`)."""
        return seoul_midnight(self.end + dt.timedelta(days=1))


def period_containing(agreement: Agreement, day: dt.date) -> Period | None:
    """The agreement's settlement period that holds `day`; None before `starts_on` or after `ends_on`."""
    if day < agreement.starts_on or (agreement.ends_on is not None and day > agreement.ends_on):
        return None
    kind = SettlementPeriod(agreement.settlement_period)
    if kind == SettlementPeriod.DAILY:
        start = end = day
    elif kind == SettlementPeriod.WEEKLY:
        start = agreement.starts_on + dt.timedelta(days=7 * ((day - agreement.starts_on).days // 7))
        end = start + dt.timedelta(days=6)
    else:
        start = max(day.replace(day=1), agreement.starts_on)
        end = day.replace(day=calendar.monthrange(day.year, day.month)[1])
    if agreement.ends_on is not None:
        end = min(end, agreement.ends_on)
    return Period(start, end)


def first_period(agreement: Agreement) -> Period:
    period = period_containing(agreement, agreement.starts_on)
    assert period is not None
    return period


def next_period(agreement: Agreement, period: Period) -> Period | None:
    return period_containing(agreement, period.end + dt.timedelta(days=1))


# ---------------------------------------------------------------- figures


@dataclass(frozen=True)
class LineFigures:
    kind: FlowKind
    payer_id: int
    payee_id: int
    count: int
    gross_won: int
    fee_won: int
    net_won: int


@dataclass(frozen=True)
class NetFigures:
    payer_id: int | None
    payee_id: int | None
    net_won: int


def net_of(lines: Iterable[LineFigures], operator_a_id: int, operator_b_id: int) -> NetFigures:
    """What one operator owes the other: the difference of the two directions' net sums."""
    owed = {operator_a_id: 0, operator_b_id: 0}
    for line in lines:
        owed[line.payer_id] += line.net_won
    a_owes, b_owes = owed[operator_a_id], owed[operator_b_id]
    if a_owes == b_owes:
        return NetFigures(None, None, 0)
    if a_owes > b_owes:
        return NetFigures(operator_a_id, operator_b_id, a_owes - b_owes)
    return NetFigures(operator_b_id, operator_a_id, b_owes - a_owes)


def _line_order(agreement: Agreement):
    return lambda line: (KIND_ORDER[FlowKind(line.kind)], 0 if line.payer_id == agreement.operator_a_id else 1)


async def _aggregate(session: AsyncSession, *where) -> list[LineFigures]:
    F = SettlementFlow
    rows = await session.execute(
        sa.select(
            F.kind,
            F.payer_id,
            F.payee_id,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(F.gross_won), 0),
            sa.func.coalesce(sa.func.sum(F.fee_won), 0),
            sa.func.coalesce(sa.func.sum(F.net_won), 0),
        )
        .where(*where)
        .group_by(F.kind, F.payer_id, F.payee_id)
    )
    return [LineFigures(FlowKind(k), p, q, int(c), int(g), int(f), int(n)) for k, p, q, c, g, f, n in rows]


async def provisional_lines(
    session: AsyncSession, settlement: Settlement, agreement: Agreement, *, now: dt.datetime | None = None
) -> list[LineFigures]:
    """An OPEN settlement's figures so far: what closing it now would seal."""
    cutoff = min(now or utcnow(), Period(settlement.period_start, settlement.period_end).ends_at)
    lines = await _aggregate(
        session,
        SettlementFlow.agreement_id == agreement.id,
        SettlementFlow.settlement_id.is_(None),
        SettlementFlow.occurred_at < cutoff,
    )
    return sorted(lines, key=_line_order(agreement))


async def lines_of(session: AsyncSession, settlement_id: int) -> list[SettlementLine]:
    stmt = (
        sa.select(SettlementLine).where(SettlementLine.settlement_id == settlement_id).order_by(SettlementLine.position)
    )
    return list((await session.execute(stmt)).scalars())


# ---------------------------------------------------------------- the canonical document


def document_for(
    *,
    agreement: Agreement,
    codes: dict[int, str],
    period: Period,
    lines: list[LineFigures],
    net: NetFigures,
    closed_at: dt.datetime,
) -> dict[str, Any]:
    """The settlement's canonical JSON object (contract README, "Canonical documents")."""
    return {
        "agreement": agreement.code,
        "operatorA": codes[agreement.operator_a_id],
        "operatorB": codes[agreement.operator_b_id],
        "periodStart": documents.iso(period.start),
        "periodEnd": documents.iso(period.end),
        "lines": [
            {
                "kind": line.kind.value,
                "payer": codes[line.payer_id],
                "payee": codes[line.payee_id],
                "count": str(line.count),
                "grossWon": documents.won(line.gross_won),
                "feeWon": documents.won(line.fee_won),
                "netWon": documents.won(line.net_won),
            }
            for line in lines
        ],
        "netPayer": codes[net.payer_id] if net.payer_id else None,
        "netPayee": codes[net.payee_id] if net.payee_id else None,
        "netWon": documents.won(net.net_won),
        "closedAt": documents.iso(closed_at.astimezone(dt.UTC)),
        "currency": CURRENCY,
    }


# ---------------------------------------------------------------- closing


async def _lock_agreement(session: AsyncSession, agreement_id: int) -> Agreement:
    agreement = (
        await session.execute(
            sa.select(Agreement)
            .where(Agreement.id == agreement_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if agreement is None:
        raise NotFound("No such agreement")
    return agreement


async def _last_closed(session: AsyncSession, agreement_id: int) -> Settlement | None:
    stmt = (
        sa.select(Settlement)
        .where(Settlement.agreement_id == agreement_id, Settlement.status != SettlementStatus.OPEN)
        .order_by(Settlement.period_start.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _first_unclosed(session: AsyncSession, agreement: Agreement) -> Period | None:
    last = await _last_closed(session, agreement.id)
    if last is None:
        return first_period(agreement)
    return next_period(agreement, Period(last.period_start, last.period_end))


async def _row_for(session: AsyncSession, agreement: Agreement, period: Period) -> Settlement:
    row = (
        await session.execute(
            sa.select(Settlement).where(
                Settlement.agreement_id == agreement.id, Settlement.period_start == period.start
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = Settlement(
            agreement_id=agreement.id, period_start=period.start, period_end=period.end, status=SettlementStatus.OPEN
        )
        session.add(row)
        await session.flush()
    return row


async def _codes(session: AsyncSession, *partner_ids: int) -> dict[int, str]:
    rows = await session.execute(sa.select(Partner.id, Partner.code).where(Partner.id.in_(set(partner_ids))))
    return dict(rows.all())


def event_data(settlement: Settlement, agreement: Agreement, codes: dict[int, str], **extra: Any) -> dict[str, Any]:
    data = {
        "id": encode_id("Settlement", settlement.id),
        "agreement": agreement.code,
        "periodStart": settlement.period_start.isoformat(),
        "periodEnd": settlement.period_end.isoformat(),
        "status": SettlementStatus(settlement.status).value,
        "netPayer": codes.get(settlement.net_payer_id) if settlement.net_payer_id else None,
        "netPayee": codes.get(settlement.net_payee_id) if settlement.net_payee_id else None,
        "netWon": str(settlement.net_won),
        "digest": settlement.digest,
    }
    data.update(extra)
    return data


async def _close_period(
    session: AsyncSession, agreement: Agreement, period: Period, *, now: dt.datetime, signer: documents.DetachedSigner
) -> Settlement:
    row = await _row_for(session, agreement, period)
    cutoff = min(now, period.ends_at)
    await session.execute(
        sa.update(SettlementFlow)
        .where(
            SettlementFlow.agreement_id == agreement.id,
            SettlementFlow.settlement_id.is_(None),
            SettlementFlow.occurred_at < cutoff,
        )
        .values(settlement_id=row.id)
        .execution_options(synchronize_session=False)
    )
    lines = sorted(await _aggregate(session, SettlementFlow.settlement_id == row.id), key=_line_order(agreement))
    net = net_of(lines, agreement.operator_a_id, agreement.operator_b_id)
    codes = await _codes(session, agreement.operator_a_id, agreement.operator_b_id)
    document = document_for(agreement=agreement, codes=codes, period=period, lines=lines, net=net, closed_at=now)
    signed = await documents.sign(document, signer)
    for position, line in enumerate(lines):
        session.add(
            SettlementLine(
                settlement_id=row.id,
                position=position,
                kind=line.kind,
                payer_id=line.payer_id,
                payee_id=line.payee_id,
                count=line.count,
                gross_won=line.gross_won,
                fee_won=line.fee_won,
                net_won=line.net_won,
            )
        )
    row.status = SettlementStatus.CLOSED
    row.net_payer_id, row.net_payee_id, row.net_won = net.payer_id, net.payee_id, net.net_won
    row.closed_at = now
    row.document, row.digest, row.signature = signed.payload, signed.digest, signed.signature
    await session.flush()
    await emit(
        session=session,
        type="settlement.closed",
        partner_ids=[agreement.operator_a_id, agreement.operator_b_id],
        data=event_data(row, agreement, codes),
        now=now,
    )
    return row


async def _open_next(session: AsyncSession, agreement: Agreement, period: Period | None) -> None:
    if period is not None:
        await _row_for(session, agreement, period)


def _closing_time(now: dt.datetime | None) -> dt.datetime:
    # The exact instant, microseconds kept: it is the sealing cut-off and the document's
    # closedAt. (Rounding it down to the second left out a movement confirmed earlier in
    # that same second, which then drifted into the next period.) Both backends store
    # microseconds: PostgreSQL timestamptz, SQLite SQLAlchemy's "%Y-%m-%d %H:%M:%S.%f" text.
    return (now or utcnow()).astimezone(dt.UTC)


async def close_settlement(
    *,
    session: AsyncSession,
    agreement_id: int,
    period_end: dt.date,
    signer: documents.DetachedSigner,
    now: dt.datetime | None = None,
) -> Settlement:
    """Close the period ending on `period_end` now (ADMIN, on demand), and every earlier one
    still open. Any period not yet closed may be closed: a past one, the current one early,
    or the next one. Errors: InvalidInput (not a period end, beyond the next period),
    InvalidState (already closed)."""
    now = _closing_time(now)
    agreement = await _lock_agreement(session, agreement_id)
    target = period_containing(agreement, period_end)
    if target is None or target.end != period_end:
        hint = f"; the period holding that day ends on {target.end.isoformat()}" if target else ""
        raise InvalidInput(
            f"{period_end.isoformat()} is not the last day of a settlement period of this agreement{hint}",
            field=["input", "periodEnd"],
        )
    today = seoul_date(now)
    if target.start > today:
        current = period_containing(agreement, today)
        allowed = (
            next_period(agreement, current)
            if current
            else (first_period(agreement) if today < agreement.starts_on else None)
        )
        if allowed is None or target.start > allowed.start:
            raise InvalidInput(
                "Only a period that has begun, or the next one, can be closed", field=["input", "periodEnd"]
            )
    period = await _first_unclosed(session, agreement)
    if period is None or period.start > target.start:
        raise InvalidState(f"The period {target.start.isoformat()} to {target.end.isoformat()} is closed already")
    while True:
        settlement = await _close_period(session, agreement, period, now=now, signer=signer)
        if period.start >= target.start:
            break
        period = next_period(agreement, period)
        assert period is not None
    await _open_next(session, agreement, next_period(agreement, period))
    return settlement


async def close_due(
    *, session: AsyncSession, agreement_id: int, signer: documents.DetachedSigner, now: dt.datetime | None = None
) -> list[Settlement]:
    """Close, in order, every period of the agreement that has ended and is not closed, and
    make sure the first period not closed has its OPEN row. Returns what it closed."""
    now = _closing_time(now)
    agreement = await _lock_agreement(session, agreement_id)
    period = await _first_unclosed(session, agreement)
    closed = []
    while period is not None and period.ends_at <= now:
        closed.append(await _close_period(session, agreement, period, now=now, signer=signer))
        period = next_period(agreement, period)
    if period is not None and period.starts_at <= now:
        await _open_next(session, agreement, period)
    return closed


async def close_due_settlements(
    *, db: Database, signer: documents.DetachedSigner, now: dt.datetime | None = None
) -> list[int]:
    """The scheduled job: `close_due` for every agreement, one transaction each (one
    agreement's failure does not hold back the others). Returns the ids closed."""
    now = now or utcnow()
    async with db.session() as session:
        agreement_ids = list((await session.execute(sa.select(Agreement.id).order_by(Agreement.id))).scalars())
    closed: list[int] = []
    for agreement_id in agreement_ids:
        try:
            async with db.transaction() as session:
                closed += [
                    s.id for s in await close_due(session=session, agreement_id=agreement_id, signer=signer, now=now)
                ]
        except Exception:  # noqa: BLE001 - reported, retried on the next run
            log.exception("closing the due settlements of agreement %s failed", agreement_id)
    return closed


# ---------------------------------------------------------------- confirm and dispute


async def get_settlement(
    session: AsyncSession, settlement_id: int, *, partner_id: int | None = None, lock: bool = False
) -> tuple[Settlement, Agreement]:
    """The settlement and its agreement, if `partner_id` is party to it (None = ADMIN).
    Another tenant's settlement is NotFound, exactly like an unknown id."""
    stmt = sa.select(Settlement).where(Settlement.id == settlement_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    settlement = (await session.execute(stmt)).scalar_one_or_none()
    agreement = await session.get(Agreement, settlement.agreement_id) if settlement else None
    if settlement is None or (
        partner_id is not None and partner_id not in (agreement.operator_a_id, agreement.operator_b_id)
    ):
        raise NotFound("No settlement with this id", field=["input", "settlementId"])
    return settlement, agreement


async def responses_of(session: AsyncSession, settlement_id: int) -> list[SettlementResponse]:
    stmt = (
        sa.select(SettlementResponse)
        .where(SettlementResponse.settlement_id == settlement_id)
        .order_by(SettlementResponse.at, SettlementResponse.partner_id)
    )
    return list((await session.execute(stmt)).scalars())


def status_from(responses: Iterable[SettlementResponse], agreement: Agreement) -> SettlementStatus:
    kinds = {r.partner_id: SettlementResponseKind(r.kind) for r in responses}
    parties = (agreement.operator_a_id, agreement.operator_b_id)
    if all(kinds.get(p) == SettlementResponseKind.CONFIRMED for p in parties):
        return SettlementStatus.CONFIRMED
    if SettlementResponseKind.DISPUTED in kinds.values():
        return SettlementStatus.DISPUTED
    return SettlementStatus.CLOSED


async def _respond(
    session: AsyncSession,
    settlement: Settlement,
    partner_id: int,
    kind: SettlementResponseKind,
    *,
    digest: str | None,
    reason: str | None,
    now: dt.datetime,
) -> None:
    response = await session.get(SettlementResponse, (settlement.id, partner_id))
    if response is None:
        session.add(
            SettlementResponse(
                settlement_id=settlement.id, partner_id=partner_id, kind=kind, digest=digest, reason=reason, at=now
            )
        )
    else:
        response.kind, response.digest, response.reason, response.at = kind, digest, reason, now
    await session.flush()


async def confirm_settlement(
    *, session: AsyncSession, settlement_id: int, partner_id: int, digest: str, now: dt.datetime | None = None
) -> Settlement:
    """An operator party to the agreement confirms the closed settlement whose document it
    hashed to `digest`. Confirming twice changes nothing. Errors: NotFound, InvalidState
    (still OPEN), DigestMismatch."""
    now = now or utcnow()
    settlement, agreement = await get_settlement(session, settlement_id, partner_id=partner_id, lock=True)
    if settlement.status == SettlementStatus.OPEN:
        raise InvalidState("The settlement is still open; it can be confirmed once closed")
    if digest.strip().lower() != settlement.digest:
        raise DigestMismatch("The digest does not match the settlement's document", field=["input", "digest"])
    before = {r.partner_id: r.kind for r in await responses_of(session, settlement.id)}
    if before.get(partner_id) == SettlementResponseKind.CONFIRMED:
        return settlement
    await _respond(
        session,
        settlement,
        partner_id,
        SettlementResponseKind.CONFIRMED,
        digest=settlement.digest,
        reason=None,
        now=now,
    )
    responses = await responses_of(session, settlement.id)
    settlement.status = status_from(responses, agreement)
    await session.flush()
    codes = await _codes(session, agreement.operator_a_id, agreement.operator_b_id)
    confirmed_by = [codes[r.partner_id] for r in responses if r.kind == SettlementResponseKind.CONFIRMED]
    await emit(
        session=session,
        type="settlement.confirmed",
        partner_ids=[agreement.operator_a_id, agreement.operator_b_id],
        data=event_data(settlement, agreement, codes, confirmedBy=confirmed_by, by=codes[partner_id]),
        now=now,
    )
    return settlement


async def dispute_settlement(
    *, session: AsyncSession, settlement_id: int, partner_id: int, reason: str, now: dt.datetime | None = None
) -> Settlement:
    """An operator party to the agreement disputes the closed settlement, with a reason.
    Errors: NotFound, InvalidInput (empty or too long a reason), InvalidState (OPEN, or
    already CONFIRMED by both)."""
    now = now or utcnow()
    reason = (reason or "").strip()
    if not reason or len(reason) > REASON_MAX:
        raise InvalidInput(f"reason must be 1 to {REASON_MAX} characters", field=["input", "reason"])
    settlement, agreement = await get_settlement(session, settlement_id, partner_id=partner_id, lock=True)
    if settlement.status == SettlementStatus.OPEN:
        raise InvalidState("The settlement is still open; it can be disputed once closed")
    if settlement.status == SettlementStatus.CONFIRMED:
        raise InvalidState("Both operators confirmed this settlement; correct it in a later period")
    await _respond(
        session, settlement, partner_id, SettlementResponseKind.DISPUTED, digest=None, reason=reason, now=now
    )
    settlement.status = status_from(await responses_of(session, settlement.id), agreement)
    await session.flush()
    codes = await _codes(session, agreement.operator_a_id, agreement.operator_b_id)
    await emit(
        session=session,
        type="settlement.disputed",
        partner_ids=[agreement.operator_a_id, agreement.operator_b_id],
        data=event_data(settlement, agreement, codes, by=codes[partner_id], reason=reason),
        now=now,
    )
    return settlement


def dispute_reason(responses: Iterable[SettlementResponse]) -> str | None:
    """The reason of the latest standing dispute, if any."""
    disputes = [r for r in responses if r.kind == SettlementResponseKind.DISPUTED]
    return disputes[-1].reason if disputes else None


# ---------------------------------------------------------------- listing


def settlements_query(
    *, partner_id: int | None, agreement_code: str | None = None, status: SettlementStatus | None = None
) -> sa.Select:
    """Settlements of the agreements `partner_id` is party to (all for None = ADMIN)."""
    stmt = sa.select(Settlement).join(Agreement, Agreement.id == Settlement.agreement_id)
    if partner_id is not None:
        stmt = stmt.where(sa.or_(Agreement.operator_a_id == partner_id, Agreement.operator_b_id == partner_id))
    if agreement_code is not None:
        stmt = stmt.where(Agreement.code == agreement_code)
    if status is not None:
        stmt = stmt.where(Settlement.status == status)
    return stmt


__all__ = [
    "CURRENCY",
    "LineFigures",
    "NetFigures",
    "Period",
    "SEOUL",
    "close_due",
    "close_due_settlements",
    "close_settlement",
    "confirm_settlement",
    "dispute_reason",
    "dispute_settlement",
    "document_for",
    "event_data",
    "first_period",
    "get_settlement",
    "lines_of",
    "net_of",
    "next_period",
    "period_containing",
    "provisional_lines",
    "responses_of",
    "seoul_date",
    "seoul_midnight",
    "settlements_query",
    "status_from",
]
