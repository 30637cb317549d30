"""Redemptions: points taken at a merchant's checkout (authorize, capture, void, refund).

See `gateway/redemption.py` for the rules these rows follow.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class RedemptionStatus(str, enum.Enum):
    AUTHORIZED = "AUTHORIZED"
    CAPTURED = "CAPTURED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"


class Redemption(IdMixin, Base):
    """One payment with points at a merchant, over one ledger hold.

    Won amounts are what the merchant asked for; points are in the member's unit, at the
    rate (`won_per_point`) the unit had when the payment was authorized. `agreement_id` is set
    for a member of another operator paying under a cooperation agreement (the points then go
    to the agreement's clearing account, and captures and refunds write settlement flows).
    """

    __tablename__ = "redemptions"
    __table_args__ = (
        sa.Index("ix_redemptions_merchant_id_order_id", "merchant_id", "order_id"),
        sa.Index("ix_redemptions_merchant_id_id", "merchant_id", "id"),
        sa.Index("ix_redemptions_merchant_operator_id_id", "merchant_operator_id", "id"),
        sa.Index("ix_redemptions_member_operator_id_id", "member_operator_id", "id"),
        sa.Index("ix_redemptions_status_expires_at", "status", "expires_at"),
        sa.CheckConstraint("amount_won > 0", name="amount_positive"),
        sa.CheckConstraint("captured_won >= 0 AND captured_won <= amount_won", name="captured_in_range"),
        sa.CheckConstraint("refunded_won >= 0 AND refunded_won <= captured_won", name="refunded_in_range"),
        sa.CheckConstraint(
            "refunded_points >= 0 AND refunded_points <= captured_points AND captured_points <= held_points",
            name="points_in_range",
        ),
    )

    #: The ledger reference of the movement (hold, capture, refunds all carry it).
    reference: Mapped[str] = mapped_column(sa.String(40), unique=True)
    merchant_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    #: The operator the merchant is affiliated with (who is paid in a cross-program payment).
    merchant_operator_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    #: The operator whose member paid (whose points were spent).
    member_operator_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    member_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("members.id"), index=True)
    agreement_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("agreements.id"))
    #: The ledger hold of an authorization; None for a payment captured at once (one posting).
    hold_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("ledger_holds.id"), unique=True)
    #: The member's wallet, and the account the points go to (merchant, or agreement clearing).
    debit_account_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("ledger_accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("ledger_accounts.id"))
    order_id: Mapped[str] = mapped_column(sa.String(128))
    status: Mapped[RedemptionStatus] = mapped_column(
        sa.Enum(RedemptionStatus, native_enum=False, length=20, validate_strings=True)
    )
    unit: Mapped[str] = mapped_column(sa.String(16))
    won_per_point: Mapped[Decimal]
    amount_won: Mapped[int]
    captured_won: Mapped[int] = mapped_column(default=0)
    refunded_won: Mapped[int] = mapped_column(default=0)
    held_points: Mapped[int]
    captured_points: Mapped[int] = mapped_column(default=0)
    refunded_points: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    #: Until when the AUTHORIZED hold stands (None for a payment captured at once).
    expires_at: Mapped[dt.datetime | None]
    captured_at: Mapped[dt.datetime | None]
    #: When it was voided, expired, or last refunded.
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def cross_program(self) -> bool:
        return self.agreement_id is not None

    @property
    def points(self) -> int:
        """The contract's `points`: held while AUTHORIZED (or when the hold ended without a
        capture), taken once captured."""
        return self.captured_points if self.captured_at is not None else self.held_points


__all__ = ["Redemption", "RedemptionStatus"]
