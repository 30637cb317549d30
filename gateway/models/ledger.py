"""Ledger tables: accounts, transactions, entries (the postings), holds and lots.

See `gateway/ledger.py` for the rules these rows follow.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class EntryKind(str, enum.Enum):
    """Why an entry exists (the contract's `EntryKind`)."""

    EARN = "EARN"
    ADJUST = "ADJUST"
    REDEEM = "REDEEM"
    RELEASE = "RELEASE"
    REFUND = "REFUND"
    DONATE = "DONATE"
    EXCHANGE_OUT = "EXCHANGE_OUT"
    EXCHANGE_IN = "EXCHANGE_IN"
    EXPIRE = "EXPIRE"


class OwnerKind(str, enum.Enum):
    #: A member's wallet (owner_id = members.id).
    MEMBER = "MEMBER"
    #: An account of a partner (owner_id = partners.id): issuance, breakage, merchant, sponsor, ...
    PARTNER = "PARTNER"
    #: A clearing account of a cooperation agreement (owner_id = agreements.id).
    AGREEMENT = "AGREEMENT"


class HoldStatus(str, enum.Enum):
    PENDING = "PENDING"
    POSTED = "POSTED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"


def _enum(cls):
    return sa.Enum(cls, native_enum=False, length=20, validate_strings=True)


class Account(IdMixin, Base):
    """One balance in one unit. `available + held` is the account's total (its posted balance).

    A member wallet can never go below zero (`allow_negative` false, also enforced by a
    CHECK constraint); system accounts (issuance, clearing, ...) may.
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        sa.UniqueConstraint("owner_kind", "owner_id", "unit", "purpose"),
        sa.CheckConstraint("allow_negative OR available >= 0", name="available_not_negative"),
        sa.CheckConstraint("held >= 0", name="held_not_negative"),
    )

    owner_kind: Mapped[OwnerKind] = mapped_column(_enum(OwnerKind))
    owner_id: Mapped[int] = mapped_column(BigId)
    unit: Mapped[str] = mapped_column(sa.String(16))
    #: "wallet", "issuance", "breakage", "merchant", "clearing", "beneficiary", "sponsor", ...
    purpose: Mapped[str] = mapped_column(sa.String(32))
    available: Mapped[int] = mapped_column(default=0)
    held: Mapped[int] = mapped_column(default=0)
    allow_negative: Mapped[bool] = mapped_column(default=True)
    #: Credits arrive in dated lots that are spent and expire oldest first (member wallets).
    has_lots: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def total(self) -> int:
        return self.available + self.held


class LedgerTransaction(IdMixin, Base):
    """One atomic posting of one or more legs; its entries balance per unit."""

    __tablename__ = "ledger_transactions"

    #: The movement this belongs to; a movement (e.g. a redemption: hold, capture, refund)
    #: may have several transactions, all with the same reference.
    reference: Mapped[str] = mapped_column(sa.String(40), index=True)
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind))
    memo: Mapped[str | None] = mapped_column(sa.String(300))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LedgerEntry(IdMixin, Base):
    """A posting to one account. Written once, never updated or deleted.

    `points` is the signed change to the account's total (credit > 0, debit < 0), and
    the entries of one transaction sum to zero per unit. `held_change` is the signed change
    to the held part (holds and their release); `balance_after` the total after this entry.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (sa.Index("ix_ledger_entries_account_id_id", "account_id", "id"),)

    transaction_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("ledger_accounts.id"))
    unit: Mapped[str] = mapped_column(sa.String(16))
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind))
    points: Mapped[int]
    held_change: Mapped[int] = mapped_column(default=0)
    balance_after: Mapped[int]
    available_after: Mapped[int]
    reference: Mapped[str] = mapped_column(sa.String(40), index=True)
    memo: Mapped[str | None] = mapped_column(sa.String(300))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Hold(IdMixin, Base):
    """A two-phase transfer: reserved on the debit account, then posted (in full or in part),
    voided, or expired (the TigerBeetle pending-transfer model)."""

    __tablename__ = "ledger_holds"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("posted_amount >= 0 AND posted_amount <= amount", name="posted_in_range"),
        sa.Index("ix_ledger_holds_status_expires_at", "status", "expires_at"),
    )

    reference: Mapped[str] = mapped_column(sa.String(40), index=True)
    debit_account_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("ledger_accounts.id"), index=True)
    credit_account_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("ledger_accounts.id"))
    unit: Mapped[str] = mapped_column(sa.String(16))
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind))
    amount: Mapped[int]
    posted_amount: Mapped[int] = mapped_column(default=0)
    status: Mapped[HoldStatus] = mapped_column(_enum(HoldStatus), default=HoldStatus.PENDING)
    memo: Mapped[str | None] = mapped_column(sa.String(300))
    expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]


class Lot(IdMixin, Base):
    """Points credited together to a wallet, spent and expired oldest first.

    `remaining` is the free part, `held` the part reserved by pending holds; over one
    wallet, sum(remaining) == available and sum(held) == held.
    """

    __tablename__ = "ledger_lots"
    __table_args__ = (
        sa.CheckConstraint("remaining >= 0 AND held >= 0", name="parts_not_negative"),
        sa.Index("ix_ledger_lots_account_id_expires_at", "account_id", "expires_at", "id"),
        sa.Index("ix_ledger_lots_expires_at_remaining", "expires_at", "remaining"),
    )

    account_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("ledger_accounts.id"))
    #: The entry that credited the lot.
    entry_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("ledger_entries.id"))
    amount: Mapped[int]
    remaining: Mapped[int]
    held: Mapped[int] = mapped_column(default=0)
    #: The Asia/Seoul day the points were credited (or, for walking, the walk's date).
    earned_on: Mapped[dt.date]
    #: None: never expires. Lots are taken in (expires_at, id) order, never-expiring last.
    expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HoldLot(Base):
    """Which lots a pending hold reserved, so posting and release return the right points."""

    __tablename__ = "ledger_hold_lots"

    hold_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("ledger_holds.id"), primary_key=True)
    lot_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("ledger_lots.id"), primary_key=True)
    amount: Mapped[int]


__all__ = [
    "Account",
    "EntryKind",
    "Hold",
    "HoldLot",
    "HoldStatus",
    "LedgerEntry",
    "LedgerTransaction",
    "Lot",
    "OwnerKind",
]
