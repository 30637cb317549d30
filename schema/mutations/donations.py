"""donatePoints: an operator gives its member's points to a beneficiary."""

from __future__ import annotations

import strawberry

from gateway import donations as donation_service
from schema.errors import UserError, forbidden, mutate
from schema.permissions import OPERATOR, needs, principal_of
from schema.scalars import BigInt
from schema.types.donations import Donation


@strawberry.input
class DonatePointsInput:
    member_external_id: str
    beneficiary_code: str
    points: BigInt
    campaign_code: str | None = strawberry.field(
        default=None, description="Campaign whose sponsor matches the donation."
    )
    idempotency_key: str


@strawberry.type
class DonationPayload:
    donation: Donation | None
    errors: list[UserError]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="OPERATOR.", extensions=needs("donations:write", OPERATOR))
    async def donate_points(self, info: strawberry.Info, input: DonatePointsInput) -> DonationPayload:
        principal = principal_of(info)
        if principal.partner_kind != "OPERATOR":
            raise forbidden("Only an OPERATOR gives its members' points.")
        return await mutate(
            info,
            lambda session: donation_service.donate_points(
                session=session,
                operator_id=principal.partner_id,
                member_external_id=input.member_external_id,
                beneficiary_code=input.beneficiary_code,
                points=input.points,
                campaign_code=input.campaign_code,
                idempotency_key=input.idempotency_key,
            ),
            lambda d, errors: DonationPayload(donation=Donation.from_model(d), errors=errors),
        )
