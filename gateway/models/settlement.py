"""Settlement and reconciliation: the cross-program flows each agreement nets period by
period, the sealed settlements, and the partners' reconciliation reports.

`SettlementFlow` is written by the services that move value across programs (a
redemption captured at another operator's merchant, its refund, an exchange), in
the same transaction as the postings. `gateway/settlement.py` reads and seals them;
`gateway/reconciliation.py` compares them with what partners recorded.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


def _enum(cls):
    return sa.Enum(cls, native_enum=False, length=20, validate_strings=True)


class FlowKind(str, enum.Enum):
    CROSS_REDEMPTION = "CROSS_REDEMPTION"
    CROSS_REFUND = "CROSS_REFUND"
    EXCHANGE = "EXCHANGE"


class SettlementStatus(str, enum.Enum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    CONFIRMED = "CONFIRMED"
    DISPUTED = "DISPUTED"


class SettlementResponseKind(str, enum.Enum):
    """An operator's answer to a closed settlement."""

    CONFIRMED = "CONFIRMED"
    DISPUTED = "DISPUTED"


class ReconciliationStatus(str, enum.Enum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class DiscrepancyKind(str, enum.Enum):
    MISSING_IN_GATEWAY = "MISSING_IN_GATEWAY"
    MISSING_AT_PARTNER = "MISSING_AT_PARTNER"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    DUPLICATE = "DUPLICATE"


class DiscrepancyStatus(str, enum.Enum):
    OPEN = "OPEN"
    RESOLVED = "RESOLVED"


class Settlement(IdMixin, Base):
    """One settlement period of one agreement.

    A row is OPEN while its period collects movements (figures are then computed on
    read), and is sealed by closing: the flows it settles point at it, its lines are
    written, and the canonical document, its digest and signature are stored, never to
    change again. Periods of an agreement close in order; at most one row is OPEN.
    """

    __tablename__ = "settlements"
    __table_args__ = (
        sa.UniqueConstraint("agreement_id", "period_start"),
        sa.CheckConstraint("net_won >= 0", name="net_won"),
    )

    agreement_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("agreements.id"), index=True)
    period_start: Mapped[dt.date]
    period_end: Mapped[dt.date]
    status: Mapped[SettlementStatus] = mapped_column(_enum(SettlementStatus), default=SettlementStatus.OPEN, index=True)
    net_payer_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    net_payee_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    net_won: Mapped[int] = mapped_column(default=0)
    closed_at: Mapped[dt.datetime | None]
    #: The canonical JSON (RFC 8785) bytes that `digest` and `signature` cover.
    document: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    digest: Mapped[str | None] = mapped_column(sa.String(64))
    signature: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SettlementLine(IdMixin, Base):
    """A closed settlement's figures for one flow kind and direction (payer -> payee)."""

    __tablename__ = "settlement_lines"

    settlement_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("settlements.id"), index=True)
    #: Order of the line in the settlement's document.
    position: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[FlowKind] = mapped_column(_enum(FlowKind))
    payer_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    payee_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    count: Mapped[int]
    gross_won: Mapped[int]
    fee_won: Mapped[int]
    net_won: Mapped[int]


class SettlementResponse(Base):
    """An operator's confirmation (with the digest it computed) or dispute (with a reason)."""

    __tablename__ = "settlement_responses"

    settlement_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("settlements.id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), primary_key=True)
    kind: Mapped[SettlementResponseKind] = mapped_column(_enum(SettlementResponseKind))
    digest: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SettlementFlow(IdMixin, Base):
    """One cross-program movement in won, as the contract's "Decisions" define it.

    `payer_id` owes `net_won = gross_won - fee_won` to `payee_id` (both operators of the
    agreement). For a CROSS_REDEMPTION or EXCHANGE the payer is the operator whose points were
    spent; a CROSS_REFUND runs the other way. `settlement_id` is set when a closed settlement
    seals the flow; a flow is sealed once and never moves.
    """

    __tablename__ = "settlement_flows"
    __table_args__ = (
        sa.Index("ix_settlement_flows_open", "agreement_id", "settlement_id", "occurred_at"),
        sa.Index("ix_settlement_flows_period", "agreement_id", "occurred_at"),
        sa.CheckConstraint("gross_won >= 0 AND fee_won >= 0 AND net_won = gross_won - fee_won", name="amounts"),
    )

    agreement_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("agreements.id"))
    kind: Mapped[FlowKind] = mapped_column(_enum(FlowKind))
    payer_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    payee_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    #: The movement's ledger reference, as partners quote it in reconciliation reports.
    #: A redemption's capture and its refunds share one reference.
    reference: Mapped[str] = mapped_column(sa.String(40), index=True)
    gross_won: Mapped[int]
    fee_won: Mapped[int]
    net_won: Mapped[int]
    #: Capture, refund or exchange time; decides the period (Asia/Seoul day).
    occurred_at: Mapped[dt.datetime]
    settlement_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("settlements.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReconciliationRun(IdMixin, Base):
    """One comparison of an operator's records of a period with the gateway's flows.

    RUNNING while the report is staged and matched (`staged_at` is set once every record
    is in), then COMPLETED with its counts, or FAILED with `error`.
    `partner_records = matched + missing_in_gateway + amount_mismatch + duplicates`.
    """

    __tablename__ = "reconciliation_runs"

    agreement_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("agreements.id"), index=True)
    partner_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), index=True)
    period_start: Mapped[dt.date]
    period_end: Mapped[dt.date]
    status: Mapped[ReconciliationStatus] = mapped_column(
        _enum(ReconciliationStatus), default=ReconciliationStatus.RUNNING
    )
    partner_records: Mapped[int] = mapped_column(default=0)
    matched: Mapped[int] = mapped_column(default=0)
    missing_in_gateway: Mapped[int] = mapped_column(default=0)
    missing_at_partner: Mapped[int] = mapped_column(default=0)
    amount_mismatch: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    staged_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class StagedRecord(Base):
    """Staging: one record of a partner's report, in the order it was received (`seq`).

    `run_id` has no foreign key on purpose: a report of millions of rows is COPYed in, and a
    per-row referential check would cost more than the insert; only `stage_report` writes
    here, for a run it has just created."""

    __tablename__ = "reconciliation_records"

    run_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    reference: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[FlowKind] = mapped_column(_enum(FlowKind))
    amount_won: Mapped[int]
    occurred_at: Mapped[dt.datetime]


class Discrepancy(IdMixin, Base):
    """A difference found by a reconciliation run; resolvable with a note."""

    __tablename__ = "discrepancies"
    __table_args__ = (sa.Index("ix_discrepancies_run_kind", "run_id", "kind", "id"),)

    run_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("reconciliation_runs.id"), index=True)
    reference: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[DiscrepancyKind] = mapped_column(_enum(DiscrepancyKind))
    flow_kind: Mapped[FlowKind] = mapped_column(_enum(FlowKind))
    gateway_amount_won: Mapped[int | None]
    partner_amount_won: Mapped[int | None]
    #: The gateway's flow and the partner's record (staging `seq`) concerned, where there is one.
    flow_id: Mapped[int | None] = mapped_column(BigId)
    record_seq: Mapped[int | None] = mapped_column(sa.BigInteger)
    status: Mapped[DiscrepancyStatus] = mapped_column(_enum(DiscrepancyStatus), default=DiscrepancyStatus.OPEN)
    resolution: Mapped[str | None] = mapped_column(sa.Text)
    resolved_by_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    resolved_at: Mapped[dt.datetime | None]


__all__ = [
    "Discrepancy",
    "DiscrepancyKind",
    "DiscrepancyStatus",
    "FlowKind",
    "StagedRecord",
    "ReconciliationRun",
    "ReconciliationStatus",
    "SettlementResponseKind",
    "Settlement",
    "SettlementFlow",
    "SettlementLine",
    "SettlementResponse",
    "SettlementStatus",
]
