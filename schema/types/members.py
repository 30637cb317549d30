"""Members, balances, ledger entries, walking activity and member codes."""

from __future__ import annotations

from typing import Annotated

import strawberry

from gateway import members as member_service
from gateway.models import ActivityRecord, ActivityStatus, EntryKind, MemberCodePurpose, MemberStatus
from gateway.models import LedgerEntry as LedgerEntryRow
from gateway.models import Member as MemberRow
from schema.ids import encode_id
from schema.node import Node
from schema.pagination import Connection, after_position, check_first, connection
from schema.scalars import BigInt, Date, DateTime
from schema.types.partners import Partner, load_partner

MemberStatusEnum = strawberry.enum(MemberStatus, name="MemberStatus")
EntryKindEnum = strawberry.enum(EntryKind, name="EntryKind")
ActivityStatusEnum = strawberry.enum(ActivityStatus, name="ActivityStatus")
MemberCodePurposeEnum = strawberry.enum(MemberCodePurpose, name="MemberCodePurpose")


@strawberry.type
class Balance:
    unit: str
    available: BigInt = strawberry.field(description="Points that can be spent now.")
    held: BigInt = strawberry.field(description="Points reserved by authorized redemptions.")
    total: BigInt = strawberry.field(description="available + held.")


@strawberry.type
class LedgerEntry(Node):
    id: strawberry.ID
    kind: EntryKindEnum
    points: BigInt = strawberry.field(description="Signed change to the member's total balance.")
    unit: str
    balance_after: BigInt
    reference: str = strawberry.field(description="Reference shared with every partner the movement concerns.")
    memo: str | None
    created_at: DateTime

    @classmethod
    def from_model(cls, row: LedgerEntryRow) -> LedgerEntry:
        return cls(
            id=strawberry.ID(encode_id("LedgerEntry", row.id)),
            kind=row.kind,
            points=row.points,
            unit=row.unit,
            balance_after=row.balance_after,
            reference=row.reference,
            memo=row.memo,
            created_at=row.created_at,
        )


@strawberry.type
class Activity:
    date: Date
    steps: int
    distance_meters: int
    points_credited: BigInt
    source: str | None
    updated_at: DateTime

    @classmethod
    def from_model(cls, row: ActivityRecord) -> Activity:
        return cls(
            date=row.date,
            steps=row.steps,
            distance_meters=row.distance_meters,
            points_credited=row.points_credited,
            source=row.source,
            updated_at=row.updated_at,
        )


@strawberry.type
class Member(Node):
    id: strawberry.ID
    external_id: str = strawberry.field(
        description="The operator's own identifier of the member; the gateway holds no name, phone or other personal data."
    )
    status: MemberStatusEnum
    enrolled_at: DateTime
    row: strawberry.Private[MemberRow]

    @strawberry.field
    async def operator(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.row.operator_id)

    @strawberry.field
    async def balance(self, info: strawberry.Info) -> Balance:
        b = await member_service.balance(info.context.session, self.row)
        return Balance(unit=b.unit, available=b.available, held=b.held, total=b.available + b.held)

    @strawberry.field
    async def activities(
        self,
        info: strawberry.Info,
        first: int | None = 50,
        after: str | None = None,
        from_: Annotated[Date | None, strawberry.argument(name="from")] = None,
        to: Date | None = None,
    ) -> Connection[Activity]:
        import datetime as dt

        n = check_first(info, first)
        position = after_position(after)
        rows = await member_service.activities(
            info.context.session,
            self.row,
            limit=n + 1,
            before=dt.date.fromordinal(position) if position else None,
            date_from=from_,
            date_to=to,
        )
        return connection(
            rows,
            n,
            cursor_of=lambda r: r.date.toordinal(),
            to_node=Activity.from_model,
            has_previous=position is not None,
        )

    @strawberry.field
    async def entries(
        self, info: strawberry.Info, first: int | None = 50, after: str | None = None
    ) -> Connection[LedgerEntry]:
        n = check_first(info, first)
        position = after_position(after)
        rows = await member_service.entries(info.context.session, self.row, limit=n + 1, before_id=position)
        return connection(
            rows, n, cursor_of=lambda r: r.id, to_node=LedgerEntry.from_model, has_previous=position is not None
        )

    @classmethod
    def from_model(cls, row: MemberRow | None) -> Member | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("Member", row.id)),
            external_id=row.external_id,
            status=row.status,
            enrolled_at=row.enrolled_at,
            row=row,
        )


@strawberry.type
class MemberCode:
    code: str = strawberry.field(description="Single-use numeric code of 16 digits, printable as a barcode or QR code.")
    purpose: MemberCodePurposeEnum
    expires_at: DateTime


@strawberry.type
class ActivityResult:
    member_external_id: str
    date: Date
    status: ActivityStatusEnum
    points_credited: BigInt = strawberry.field(
        description="Points credited (or, for a downward correction, debited) by this record."
    )
    reason: str | None
