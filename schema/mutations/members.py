"""Operator mutations: report walking, set a member's status, issue member codes."""

from __future__ import annotations

import strawberry

from gateway import activity as activity_service
from gateway import codes as code_service
from gateway import members as member_service
from gateway.db import utcnow
from gateway.models import MemberCodePurpose, MemberStatus
from schema.errors import UserError, forbidden, mutate
from schema.permissions import OPERATOR, needs, principal_of
from schema.scalars import Date
from schema.types.members import (
    ActivityResult,
    Member,
    MemberCode,
    MemberCodePurposeEnum,
    MemberStatusEnum,
)


@strawberry.input
class ActivityInput:
    member_external_id: str
    date: Date
    steps: int
    distance_meters: int
    source: str | None = None


@strawberry.input
class RecordActivitiesInput:
    activities: list[ActivityInput] = strawberry.field(
        description="At most 1,000 records; members not yet known are enrolled."
    )


@strawberry.type
class RecordActivitiesPayload:
    results: list[ActivityResult]
    errors: list[UserError]


@strawberry.input
class SetMemberStatusInput:
    member_external_id: str
    status: MemberStatusEnum


@strawberry.type
class MemberPayload:
    member: Member | None
    errors: list[UserError]


@strawberry.input
class IssueMemberCodeInput:
    member_external_id: str
    purpose: MemberCodePurposeEnum


@strawberry.type
class MemberCodePayload:
    member_code: MemberCode | None
    errors: list[UserError]


def _operator_id(info) -> int:
    """These mutations act for the calling operator's own members only."""
    principal = principal_of(info)
    if principal.partner_kind != "OPERATOR":
        raise forbidden("Only an OPERATOR acts on its members.")
    return principal.partner_id


@strawberry.type
class Mutation:
    @strawberry.mutation(description="OPERATOR.", extensions=needs("activity:write", OPERATOR))
    async def record_activities(self, info: strawberry.Info, input: RecordActivitiesInput) -> RecordActivitiesPayload:
        operator_id = _operator_id(info)
        records = [
            activity_service.ActivityIn(
                member_external_id=a.member_external_id,
                date=a.date,
                steps=a.steps,
                distance_meters=a.distance_meters,
                source=a.source,
            )
            for a in input.activities
        ]
        return await mutate(
            info,
            lambda session: activity_service.record_activities(
                session=session,
                operator_id=operator_id,
                records=records,
                now=utcnow(),
                backdate_days=info.context.settings.activity_backdate_days,
            ),
            lambda outcomes, errors: RecordActivitiesPayload(
                results=[
                    ActivityResult(
                        member_external_id=o.member_external_id,
                        date=o.date,
                        status=o.status,
                        points_credited=o.points_credited,
                        reason=o.reason,
                    )
                    for o in outcomes or []
                ],
                errors=errors,
            ),
        )

    @strawberry.mutation(description="OPERATOR.", extensions=needs("activity:write", OPERATOR))
    async def set_member_status(self, info: strawberry.Info, input: SetMemberStatusInput) -> MemberPayload:
        operator_id = _operator_id(info)
        return await mutate(
            info,
            lambda session: member_service.set_member_status(
                session=session,
                operator_id=operator_id,
                external_id=input.member_external_id,
                status=MemberStatus(input.status.value),
            ),
            lambda m, errors: MemberPayload(member=Member.from_model(m), errors=errors),
        )

    @strawberry.mutation(description="OPERATOR.", extensions=needs("codes:issue", OPERATOR))
    async def issue_member_code(self, info: strawberry.Info, input: IssueMemberCodeInput) -> MemberCodePayload:
        operator_id = _operator_id(info)
        purpose = MemberCodePurpose(input.purpose.value)
        return await mutate(
            info,
            lambda session: code_service.issue_member_code(
                session=session,
                operator_id=operator_id,
                external_id=input.member_external_id,
                purpose=purpose,
                now=utcnow(),
                ttl_seconds=code_service.ttl_for(info.context.settings, purpose),
            ),
            lambda c, errors: MemberCodePayload(
                member_code=MemberCode(code=c.code, purpose=c.purpose, expires_at=c.expires_at) if c else None,
                errors=errors,
            ),
        )
