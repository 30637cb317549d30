"""Donation statements: what a sponsor owes for a period, signed so anyone can check it.

What a caller may rely on
-------------------------
* `donation_statement(session=, sponsor_id=, period_start=, period_end=, signer=)` issues the
  sponsor's statement: one line per campaign (and so per beneficiary: a campaign has one)
  that overlaps the period or has figures in it, `totalWon` = the sum of the lines'
  `totalWon`, and `days`, the walking behind `distanceWon` per walk date and campaign, which
  sums to the lines' `distanceWon` (and `distanceKm`) exactly.
* The statement *is* its canonical JSON document (RFC 8785 through `gateway.documents`,
  amounts and counts as strings, dates ISO 8601, `currency: "KRW"`, `provisional`), with the
  lowercase hex SHA-256 `digest` of those bytes and a detached compact JWS `signature`
  (EdDSA, `kid` from the JWKS). The figures shown in GraphQL, JSON, CSV and PDF are all read
  back from the stored bytes, so they cannot disagree.
* A **closed** period (it ended before today in Asia/Seoul) is issued once: the first request
  stores the bytes, seals the per-day figures it used (`CampaignDay.sealed_by`) and posts in
  the ledger what they commit for walking (KRW, sponsor to beneficiary, one posting per
  line; matches were posted with their donations); every later request gets the same bytes. A figure that arrives later for a date inside an issued
  period (a late or corrected walk) is never added to it: it goes into the sponsor's next
  statement issued, listed under its own walk date in `days`. So a sponsor's statements
  never overlap and, together, account for every won committed.
* An **open** period (it ends today or later) gives a provisional statement
  (`"provisional": true` in the document), signed and kept only as long as its URLs live.
* Periods of one sponsor's issued statements may not overlap: a request that overlaps an
  issued one (other than the same period) raises InvalidInput naming it.
* `participants` of a line counts the campaign's participants who walked on some date of the
  period within the campaign's dates; `achievers` counts goals reached with walking of the
  statement's dates (a goal later taken back by a correction shows as -1 in a later one).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from decimal import Decimal
from xml.sax.saxutils import escape

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway import documents, ledger
from gateway.campaigns import (
    commitment_accounts,
    commitment_posting,
    flush_commitments,
    km,
    lock_commitments,
    seoul_today,
)
from gateway.db import utcnow
from gateway.errors import InvalidInput
from gateway.models import ActivityRecord, Partner
from gateway.models.campaigns import OPEN, Campaign, CampaignDay, CampaignParticipant, IssuedStatement

#: Longest period a statement may cover.
MAX_PERIOD_DAYS = 731
#: How long a provisional statement's bytes are kept at least (its URLs live one hour by default).
PROVISIONAL_KEEP = dt.timedelta(hours=2)
CSV_COLUMNS = (
    "campaign",
    "beneficiary",
    "participants",
    "achievers",
    "distanceKm",
    "distanceWon",
    "achievementWon",
    "matchedWon",
    "totalWon",
)
FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}


@dataclass(frozen=True)
class StatementLine:
    campaign: str
    beneficiary: str
    participants: int
    achievers: int
    distance_km: Decimal
    distance_won: int
    achievement_won: int
    matched_won: int
    total_won: int


@dataclass(frozen=True)
class StatementDay:
    date: dt.date
    campaign: str
    participants: int
    distance_km: Decimal
    distance_won: int


@dataclass(frozen=True)
class Statement:
    """An issued statement, as read back from its canonical bytes."""

    id: int
    sponsor: str
    period_start: dt.date
    period_end: dt.date
    provisional: bool
    issued_at: dt.datetime
    lines: tuple[StatementLine, ...]
    days: tuple[StatementDay, ...]
    total_won: int
    document: bytes
    digest: str
    signature: str

    @classmethod
    def from_issued(cls, row: IssuedStatement) -> Statement:
        doc = json.loads(bytes(row.document))
        lines = tuple(
            StatementLine(
                campaign=line["campaign"],
                beneficiary=line["beneficiary"],
                participants=int(line["participants"]),
                achievers=int(line["achievers"]),
                distance_km=Decimal(line["distanceKm"]),
                distance_won=int(line["distanceWon"]),
                achievement_won=int(line["achievementWon"]),
                matched_won=int(line["matchedWon"]),
                total_won=int(line["totalWon"]),
            )
            for line in doc["lines"]
        )
        days = tuple(
            StatementDay(
                date=dt.date.fromisoformat(day["date"]),
                campaign=day["campaign"],
                participants=int(day["participants"]),
                distance_km=Decimal(day["distanceKm"]),
                distance_won=int(day["distanceWon"]),
            )
            for day in doc["days"]
        )
        return cls(
            id=row.id,
            sponsor=doc["sponsor"],
            period_start=dt.date.fromisoformat(doc["periodStart"]),
            period_end=dt.date.fromisoformat(doc["periodEnd"]),
            provisional=bool(doc["provisional"]),
            issued_at=dt.datetime.fromisoformat(doc["issuedAt"]),
            lines=lines,
            days=days,
            total_won=int(doc["totalWon"]),
            document=bytes(row.document),
            digest=row.digest,
            signature=row.signature,
        )


# ---------------------------------------------------------------- issuing


def _seal_key(sponsor_id: int, start: dt.date, end: dt.date) -> str:
    return f"{sponsor_id}:{start.isoformat()}:{end.isoformat()}"


async def find_final(
    session: AsyncSession, *, sponsor_id: int, period_start: dt.date, period_end: dt.date
) -> Statement | None:
    """The statement already issued for this closed period, if any."""
    row = (
        await session.execute(
            sa.select(IssuedStatement).where(
                IssuedStatement.seal_key == _seal_key(sponsor_id, period_start, period_end)
            )
        )
    ).scalar_one_or_none()
    return Statement.from_issued(row) if row is not None and row.digest else None


async def get_issued(session: AsyncSession, statement_id: int) -> Statement | None:
    row = await session.get(IssuedStatement, statement_id)
    return Statement.from_issued(row) if row is not None and row.digest else None


def _check_period(start: dt.date, end: dt.date) -> None:
    if end < start:
        raise InvalidInput("periodEnd must not be before periodStart", field=["periodEnd"])
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidInput(f"a statement covers at most {MAX_PERIOD_DAYS} days", field=["periodEnd"])


async def _overlapping(session: AsyncSession, sponsor_id: int, start: dt.date, end: dt.date) -> IssuedStatement | None:
    return (
        await session.execute(
            sa.select(IssuedStatement)
            .where(
                IssuedStatement.sponsor_id == sponsor_id,
                IssuedStatement.seal_key.is_not(None),
                IssuedStatement.period_start <= end,
                IssuedStatement.period_end >= start,
                sa.not_(sa.and_(IssuedStatement.period_start == start, IssuedStatement.period_end == end)),
            )
            .limit(1)
        )
    ).scalar_one_or_none()


def _rows_of(sponsor_id: int, start: dt.date, end: dt.date):
    """Open per-day figures a statement of [start, end] takes: those dated within it, and late
    ones dated inside a period already issued (they go into the next statement issued)."""
    issued = aliased(IssuedStatement)
    covered = sa.exists().where(
        issued.sponsor_id == sponsor_id,
        issued.seal_key.is_not(None),
        issued.period_start <= CampaignDay.date,
        issued.period_end >= CampaignDay.date,
    )
    return sa.and_(
        CampaignDay.sealed_by == OPEN,
        CampaignDay.campaign_id.in_(sa.select(Campaign.id).where(Campaign.sponsor_id == sponsor_id)),
        sa.or_(sa.and_(CampaignDay.date >= start, CampaignDay.date <= end), covered),
    )


async def donation_statement(
    *,
    session: AsyncSession,
    sponsor_id: int,
    period_start: dt.date,
    period_end: dt.date,
    signer: documents.DetachedSigner,
    now: dt.datetime | None = None,
    keep_provisional: dt.timedelta = PROVISIONAL_KEEP,
) -> Statement:
    """The sponsor's statement for the period (see the module docstring). Runs in a write
    transaction: it may store and seal. Provisional statements older than
    `keep_provisional` (longer than their URLs live) are deleted on the way."""
    now = now or utcnow()
    _check_period(period_start, period_end)
    await flush_commitments(session)  # this transaction's own commitments, if any
    closed = period_end < seoul_today(now)
    if closed:
        found = await find_final(session, sponsor_id=sponsor_id, period_start=period_start, period_end=period_end)
        if found is not None:
            return found
        await lock_commitments(session)  # no commitment changes while we seal
    other = await _overlapping(session, sponsor_id, period_start, period_end)
    if other is not None:
        raise InvalidInput(
            f"the period overlaps the statement issued for {other.period_start.isoformat()}"
            f"..{other.period_end.isoformat()}; ask for that period, or one that does not overlap it",
            field=["periodStart"],
        )
    issued_at = now.astimezone(dt.UTC).replace(microsecond=0)
    row = IssuedStatement(
        sponsor_id=sponsor_id,
        period_start=period_start,
        period_end=period_end,
        provisional=not closed,
        seal_key=_seal_key(sponsor_id, period_start, period_end) if closed else None,
        document=b"",
        digest="",
        signature="",
        issued_at=issued_at,
    )
    if closed:
        try:
            async with session.begin_nested():
                session.add(row)
                await session.flush()
        except IntegrityError:  # issued meanwhile by a concurrent request
            found = await find_final(session, sponsor_id=sponsor_id, period_start=period_start, period_end=period_end)
            assert found is not None
            return found
        t = CampaignDay.__table__
        await session.execute(
            sa.update(t)
            .where(CampaignDay.id.in_(sa.select(CampaignDay.id).where(_rows_of(sponsor_id, period_start, period_end))))
            .values(sealed_by=row.id)
        )
        taken = CampaignDay.sealed_by == row.id
    else:
        await session.execute(
            sa.delete(IssuedStatement).where(
                IssuedStatement.provisional.is_(True), IssuedStatement.issued_at < now - keep_provisional
            )
        )
        session.add(row)
        await session.flush()
        taken = _rows_of(sponsor_id, period_start, period_end)

    document = await _document(session, sponsor_id, period_start, period_end, taken, closed=closed, issued_at=issued_at)
    signed = await documents.sign(document, signer)
    row.document, row.digest, row.signature = signed.payload, signed.digest, signed.signature
    await session.flush()
    if closed:
        await _post_walking(session, document, now)
    return Statement.from_issued(row)


async def _post_walking(session: AsyncSession, document: dict, now: dt.datetime) -> None:
    """Post what the sealed days commit for walking (kilometres and achievements; matches were
    posted with their donations): one KRW posting per line, one reference per statement."""
    codes = [line["campaign"] for line in document["lines"]]
    found = {c.code: c for c in (await session.execute(sa.select(Campaign).where(Campaign.code.in_(codes)))).scalars()}
    reference = ledger.new_reference()
    memo = f"donation statement {document['sponsor']} {document['periodStart']}..{document['periodEnd']}"
    postings = []
    for line in document["lines"]:
        campaign = found[line["campaign"]]
        amount = int(line["distanceWon"]) + int(line["achievementWon"])
        posting = commitment_posting(
            campaign,
            amount,
            await commitment_accounts(session, campaign),
            f"{memo}: campaign {campaign.code}",
            reference,
        )
        if posting is not None:
            postings.append(posting)
    await ledger.post_many(session=session, postings=postings, now=now)


async def _document(
    session: AsyncSession,
    sponsor_id: int,
    start: dt.date,
    end: dt.date,
    taken,
    *,
    closed: bool,
    issued_at: dt.datetime,
) -> dict:
    sponsor_code = await session.scalar(sa.select(Partner.code).where(Partner.id == sponsor_id))
    days = (await session.execute(sa.select(CampaignDay).where(taken))).scalars().all()
    campaign_ids = {d.campaign_id for d in days}
    overlapping = (
        (
            await session.execute(
                sa.select(Campaign.id).where(
                    Campaign.sponsor_id == sponsor_id, Campaign.starts_on <= end, Campaign.ends_on >= start
                )
            )
        )
        .scalars()
        .all()
    )
    campaign_ids.update(overlapping)
    rows = (
        await session.execute(
            sa.select(Campaign.id, Campaign.code, Partner.code)
            .join(Partner, Partner.id == Campaign.beneficiary_id)
            .where(Campaign.id.in_(campaign_ids))
        )
    ).all()
    campaigns = {cid: (code, beneficiary) for cid, code, beneficiary in rows}
    participants = await _participants(session, list(campaign_ids), start, end)

    sums: dict[int, dict[str, int]] = {
        cid: dict(distance_m=0, distance_won=0, achievers=0, achievement_won=0, matched_won=0) for cid in campaign_ids
    }
    for d in days:
        s = sums[d.campaign_id]
        s["distance_m"] += d.distance_m
        s["distance_won"] += d.distance_won
        s["achievers"] += d.achievers
        s["achievement_won"] += d.achievement_won
        s["matched_won"] += d.matched_won
    lines = []
    for cid in sorted(campaign_ids, key=lambda c: campaigns[c][0]):
        s = sums[cid]
        total = s["distance_won"] + s["achievement_won"] + s["matched_won"]
        lines.append(
            {
                "campaign": campaigns[cid][0],
                "beneficiary": campaigns[cid][1],
                "participants": str(participants.get(cid, 0)),
                "achievers": str(s["achievers"]),
                "distanceKm": _km(s["distance_m"]),
                "distanceWon": documents.won(s["distance_won"]),
                "achievementWon": documents.won(s["achievement_won"]),
                "matchedWon": documents.won(s["matched_won"]),
                "totalWon": documents.won(total),
            }
        )
    day_entries = [
        {
            "date": d.date.isoformat(),
            "campaign": campaigns[d.campaign_id][0],
            "participants": str(d.participants),
            "distanceKm": _km(d.distance_m),
            "distanceWon": documents.won(d.distance_won),
        }
        for d in sorted(days, key=lambda d: (d.date, campaigns[d.campaign_id][0]))
        if d.participants or d.distance_m or d.distance_won
    ]
    return {
        "currency": "KRW",
        "sponsor": sponsor_code,
        "periodStart": start.isoformat(),
        "periodEnd": end.isoformat(),
        "provisional": not closed,
        "issuedAt": issued_at.isoformat(),
        "lines": lines,
        "totalWon": documents.won(sum(int(line["totalWon"]) for line in lines)),
        "days": day_entries,
    }


def _km(metres: int) -> str:
    return format(km(metres), "f")


async def _participants(session: AsyncSession, campaign_ids: list[int], start: dt.date, end: dt.date) -> dict[int, int]:
    """Per campaign: participants who walked on some date of [start, end] within its dates.

    A period covering the whole campaign reads the participants' running totals (one row
    each); a part of a campaign needs their activity records for those dates."""
    if not campaign_ids:
        return {}
    dates = (
        await session.execute(
            sa.select(Campaign.id, Campaign.starts_on, Campaign.ends_on).where(Campaign.id.in_(campaign_ids))
        )
    ).all()
    whole = [cid for cid, first, last in dates if start <= first and last <= end]
    part = [cid for cid, first, last in dates if not (start <= first and last <= end)]
    counts: dict[int, int] = {}
    if whole:
        rows = await session.execute(
            sa.select(CampaignParticipant.campaign_id, sa.func.count())
            .where(
                CampaignParticipant.campaign_id.in_(whole),
                sa.or_(CampaignParticipant.steps > 0, CampaignParticipant.distance_m > 0),
            )
            .group_by(CampaignParticipant.campaign_id)
        )
        counts.update(rows.all())
    if part:
        walked = sa.exists().where(
            ActivityRecord.member_id == CampaignParticipant.member_id,
            ActivityRecord.date >= start,
            ActivityRecord.date <= end,
            ActivityRecord.date >= Campaign.starts_on,
            ActivityRecord.date <= Campaign.ends_on,
            sa.or_(ActivityRecord.steps > 0, ActivityRecord.distance_meters > 0),
        )
        rows = await session.execute(
            sa.select(CampaignParticipant.campaign_id, sa.func.count())
            .join(Campaign, Campaign.id == CampaignParticipant.campaign_id)
            .where(CampaignParticipant.campaign_id.in_(part), walked)
            .group_by(CampaignParticipant.campaign_id)
        )
        counts.update(rows.all())
    return counts


# ---------------------------------------------------------------- URLs and renderings


def statement_urls(
    *, base_url: str, secret_key: str, ttl_seconds: int, statement_id: int, now: float | None = None
) -> dict[str, str]:
    """Absolute, expiring, HMAC-signed URLs of the statement's JSON, CSV and PDF."""
    return {
        fmt: documents.signed_url(
            base_url=base_url,
            path=f"/statements/{statement_id}.{fmt}",
            secret_key=secret_key,
            ttl_seconds=ttl_seconds,
            now=now,
        )
        for fmt in FORMATS
    }


def render_csv(statement: Statement) -> bytes:
    """One header row, one row per line; UTF-8, comma-separated."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for line in statement.lines:
        writer.writerow(
            [
                line.campaign,
                line.beneficiary,
                line.participants,
                line.achievers,
                format(line.distance_km, "f"),
                line.distance_won,
                line.achievement_won,
                line.matched_won,
                line.total_won,
            ]
        )
    return out.getvalue().encode("utf-8")


_CID_FONT = "HYSMyeongJo-Medium"


def _text(value: str) -> str:
    """Paragraph markup of a name; non-Latin text (Hangul) in a CID font every reader has."""
    text = escape(value)
    if all(ord(ch) < 256 for ch in value):
        return text
    return f'<font name="{_CID_FONT}">{text}</font>'


def _n(value: int) -> str:
    return f"{value:,}"


def render_pdf(
    statement: Statement,
    *,
    partner_names: dict[str, str] | None = None,
    campaign_names: dict[str, str] | None = None,
    issuer: str = "",
) -> bytes:
    """A readable PDF of the statement: the same figures as the JSON, with names by code."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

    if _CID_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(_CID_FONT))
    partner_names, campaign_names = partner_names or {}, campaign_names or {}
    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["Code"]
    small.fontSize, small.leading = 7, 9

    def name(code: str, names: dict[str, str]) -> Paragraph:
        label = names.get(code)
        return Paragraph(f"{_text(label)}<br/><font size=7>{escape(code)}</font>" if label else escape(code), body)

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"Donation statement {statement.sponsor} {statement.period_start}..{statement.period_end}",
        author="mileage-gateway",
        invariant=1,
    )
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
            ("ALIGN", (2, 1), (-1, -1), "RIGHT"),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("FONTSIZE", (0, 0), (-1, -1), 9),
        ]
    )
    story = [Paragraph("Donation statement", styles["Title"])]
    if statement.provisional:
        story.append(Paragraph("<b>PROVISIONAL</b>: the period has not ended; these figures may still change.", body))
    story += [
        Paragraph(
            f"<b>Sponsor:</b> {_text(partner_names.get(statement.sponsor, statement.sponsor))} ({escape(statement.sponsor)})",
            body,
        ),
        Paragraph(
            f"<b>Period:</b> {statement.period_start.isoformat()} to {statement.period_end.isoformat()} (walk dates, Asia/Seoul)",
            body,
        ),
        Paragraph(f"<b>Issued at:</b> {statement.issued_at.isoformat()}", body),
        Paragraph(f"<b>Total: {_n(statement.total_won)} KRW</b>", styles["Heading2"]),
        Spacer(1, 4 * mm),
    ]
    header = [
        "Campaign",
        "Beneficiary",
        "Participants",
        "Achievers",
        "Distance km",
        "Distance won",
        "Achievement won",
        "Matched won",
        "Total won",
    ]
    table = [header] + [
        [
            name(line.campaign, campaign_names),
            name(line.beneficiary, partner_names),
            _n(line.participants),
            _n(line.achievers),
            format(line.distance_km, "f"),
            _n(line.distance_won),
            _n(line.achievement_won),
            _n(line.matched_won),
            _n(line.total_won),
        ]
        for line in statement.lines
    ]
    table.append(
        [
            "Total",
            "",
            "",
            "",
            "",
            _n(sum(l.distance_won for l in statement.lines)),
            _n(sum(l.achievement_won for l in statement.lines)),
            _n(sum(l.matched_won for l in statement.lines)),
            _n(statement.total_won),
        ]
    )
    widths = [55 * mm, 50 * mm, 22 * mm, 20 * mm, 25 * mm, 26 * mm, 28 * mm, 24 * mm, 26 * mm]
    lines_table = LongTable(table, colWidths=widths, repeatRows=1)
    lines_table.setStyle(grid)
    lines_table.setStyle(TableStyle([("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold")]))
    story += [lines_table, Spacer(1, 6 * mm)]
    if statement.days:
        story.append(Paragraph("Walking behind the distance won, per walk date", styles["Heading3"]))
        day_rows = [["Date", "Campaign", "Participants", "Distance km", "Distance won"]] + [
            [d.date.isoformat(), escape(d.campaign), _n(d.participants), format(d.distance_km, "f"), _n(d.distance_won)]
            for d in statement.days
        ]
        days_table = LongTable(day_rows, colWidths=[30 * mm, 70 * mm, 30 * mm, 35 * mm, 35 * mm], repeatRows=1)
        days_table.setStyle(grid)
        story += [days_table, Spacer(1, 6 * mm)]
    jwks = f"{issuer.rstrip('/')}/.well-known/jwks.json" if issuer else "/.well-known/jwks.json"
    story += [
        Paragraph("Verification", styles["Heading3"]),
        Paragraph(
            "This PDF shows the figures of the signed canonical JSON document. The SHA-256 digest and the "
            "detached JWS signature below cover the JSON document's bytes; check them with "
            f"<font face=Courier>mileage-gateway verify-document statement.json --jwks {escape(jwks)} --signature SIG</font>.",
            body,
        ),
        Paragraph(f"SHA-256: {statement.digest}", small),
        Paragraph(f"Signature: {escape(statement.signature)}", small),
    ]
    doc.build(story)
    return buffer.getvalue()


__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "Statement",
    "StatementDay",
    "StatementLine",
    "donation_statement",
    "find_final",
    "get_issued",
    "render_csv",
    "render_pdf",
    "statement_urls",
]
