"""Members of an operator's program and their short-lived member codes.

The gateway holds no personal data: a member is the operator's own identifier
(`external_id`), scoped to that operator.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class MemberStatus(str, enum.Enum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    CLOSED = "CLOSED"


class MemberCodePurpose(str, enum.Enum):
    PAYMENT = "PAYMENT"
    RECEIVE = "RECEIVE"


def _enum(cls):
    return sa.Enum(cls, native_enum=False, length=20, validate_strings=True)


class Member(IdMixin, Base):
    __tablename__ = "members"
    __table_args__ = (sa.UniqueConstraint("operator_id", "external_id"),)

    operator_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    external_id: Mapped[str] = mapped_column(sa.String(128))
    status: Mapped[MemberStatus] = mapped_column(_enum(MemberStatus), default=MemberStatus.ACTIVE)
    enrolled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def active(self) -> bool:
        return self.status == MemberStatus.ACTIVE


class MemberCode(IdMixin, Base):
    """A single-use code bound to a member and a purpose; only its SHA-256 is stored."""

    __tablename__ = "member_codes"

    member_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("members.id"), index=True)
    purpose: Mapped[MemberCodePurpose] = mapped_column(_enum(MemberCodePurpose))
    code_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


__all__ = ["Member", "MemberCode", "MemberCodePurpose", "MemberStatus"]
