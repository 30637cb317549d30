"""Sponsors' campaigns, their participants, per-day figures, point donations and issued
donation statements.

See `gateway/campaigns.py` (commitments), `gateway/donations.py` and
`gateway/statements.py` for the rules these rows follow.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow

#: `CampaignDay.sealed_by` of figures no statement has sealed yet.
OPEN = 0


class CampaignStatus(str, enum.Enum):
    """Follows the calendar in Asia/Seoul; never stored."""

    SCHEDULED = "SCHEDULED"
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"


class Campaign(IdMixin, Base):
    """A sponsor's pledge to a beneficiary between two dates (Asia/Seoul), with its running
    commitment. `committed_won = distance_won + achievement_won + matched_won <= budget_won`."""

    __tablename__ = "campaigns"
    __table_args__ = (
        sa.CheckConstraint("starts_on <= ends_on", name="dates_ordered"),
        sa.CheckConstraint("committed_won <= budget_won", name="within_budget"),
        sa.CheckConstraint("committed_won = distance_won + achievement_won + matched_won", name="committed_is_the_sum"),
    )

    code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    sponsor_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), index=True)
    beneficiary_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), index=True)
    starts_on: Mapped[dt.date]
    ends_on: Mapped[dt.date]
    won_per_km: Mapped[int]
    goal_steps: Mapped[int | None]
    won_per_achiever: Mapped[int]
    match_ratio: Mapped[Decimal]
    budget_won: Mapped[int]

    #: Members enrolled with joinCampaign.
    participants: Mapped[int] = mapped_column(default=0)
    #: Exact metres walked by participants on dates within the campaign (corrections included).
    distance_m: Mapped[int] = mapped_column(default=0)
    #: Won committed for distance (floor of the exact total, cut to the budget).
    distance_won: Mapped[int] = mapped_column(default=0)
    achievers: Mapped[int] = mapped_column(default=0)
    achievement_won: Mapped[int] = mapped_column(default=0)
    matched_won: Mapped[int] = mapped_column(default=0)
    committed_won: Mapped[int] = mapped_column(default=0)
    #: When the commitment last reached the budget (None while below it).
    budget_exhausted_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CampaignParticipant(IdMixin, Base):
    """A member enrolled in a campaign, with what its walking within the dates counts for."""

    __tablename__ = "campaign_participants"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "member_id"),
        sa.Index("ix_campaign_participants_member_id", "member_id"),
    )

    campaign_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("campaigns.id"))
    member_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("members.id"))
    #: Steps and metres of the member's days within the campaign's dates, as counted.
    steps: Mapped[int] = mapped_column(default=0)
    distance_m: Mapped[int] = mapped_column(default=0)
    #: The walk date on which the goal was reached (None: not reached, or taken back).
    achieved_on: Mapped[dt.date | None]
    #: Won committed for this achievement (wonPerAchiever, or less when the budget cut it).
    achievement_won: Mapped[int] = mapped_column(default=0)
    joined_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CampaignDay(IdMixin, Base):
    """A campaign's figures for one walk date, as a statement will show them.

    Rows are deltas accumulated while open (`sealed_by = OPEN`); issuing a closed period's
    statement seals them (`sealed_by` = the statement's id) and a figure arriving later for
    the same date starts a new open row, so an issued statement never changes and every
    won lands in exactly one statement. `distance_won` is already cut to the budget, so the
    days of a statement always sum to its lines.
    """

    __tablename__ = "campaign_days"
    __table_args__ = (sa.UniqueConstraint("campaign_id", "date", "sealed_by"),)

    campaign_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("campaigns.id"))
    date: Mapped[dt.date]
    sealed_by: Mapped[int] = mapped_column(BigId, default=OPEN)
    #: Participants whose walking on that date counts (a correction to zero takes one off).
    participants: Mapped[int] = mapped_column(default=0)
    distance_m: Mapped[int] = mapped_column(default=0)
    distance_won: Mapped[int] = mapped_column(default=0)
    #: Goals reached with that date's walking, and what they committed.
    achievers: Mapped[int] = mapped_column(default=0)
    achievement_won: Mapped[int] = mapped_column(default=0)
    #: Sponsor's matches of point donations made that day.
    matched_won: Mapped[int] = mapped_column(default=0)


class Donation(IdMixin, Base):
    """A member's points given to a beneficiary, with the sponsor's match when a campaign is named."""

    __tablename__ = "donations"
    __table_args__ = (
        sa.Index("ix_donations_operator_id_id", "operator_id", "id"),
        sa.Index("ix_donations_beneficiary_id_id", "beneficiary_id", "id"),
        sa.Index("ix_donations_campaign_id_id", "campaign_id", "id"),
        sa.CheckConstraint("points > 0 AND won_value >= 0 AND matched_won >= 0", name="amounts"),
    )

    #: The ledger movement (the DONATE posting and the sponsor's match share it).
    reference: Mapped[str] = mapped_column(sa.String(40), unique=True)
    operator_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    member_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("members.id"), index=True)
    beneficiary_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    campaign_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("campaigns.id"))
    points: Mapped[int]
    unit: Mapped[str] = mapped_column(sa.String(16))
    won_value: Mapped[int]
    matched_won: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class IssuedStatement(IdMixin, Base):
    """A donation statement exactly as issued: the canonical JSON bytes, digest, signature.

    A final statement (a closed period) has `seal_key` = "sponsor_id:start:end" (unique), is
    issued once and served unchanged afterwards. A provisional one (an open period) has no
    seal key; it lives only as long as its URLs (one hour) need it.
    """

    __tablename__ = "issued_statements"
    __table_args__ = (sa.Index("ix_issued_statements_sponsor_id_period", "sponsor_id", "period_start", "period_end"),)

    sponsor_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    period_start: Mapped[dt.date]
    period_end: Mapped[dt.date]
    provisional: Mapped[bool]
    seal_key: Mapped[str | None] = mapped_column(sa.String(80), unique=True)
    document: Mapped[bytes] = mapped_column(sa.LargeBinary)
    digest: Mapped[str] = mapped_column(sa.String(64))
    signature: Mapped[str] = mapped_column(sa.Text)
    issued_at: Mapped[dt.datetime]


__all__ = ["OPEN", "Campaign", "CampaignStatus", "CampaignDay", "CampaignParticipant", "Donation", "IssuedStatement"]
