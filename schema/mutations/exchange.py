"""Exchange of points between programs, asked by the operator whose member gives them."""

from __future__ import annotations

import strawberry

from gateway import exchange as exchange_service
from gateway.db import utcnow
from schema.errors import UserError, forbidden, mutate
from schema.permissions import OPERATOR, needs, principal_of
from schema.scalars import BigInt
from schema.types.exchange import Exchange


@strawberry.input
class ExchangePointsInput:
    member_external_id: str = strawberry.field(description="The member of the calling operator who gives points.")
    receive_code: str = strawberry.field(description="A RECEIVE code issued by the other operator for its member.")
    points: BigInt
    idempotency_key: str


@strawberry.type
class ExchangePayload:
    exchange: Exchange | None
    errors: list[UserError]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="OPERATOR, for its member who gives points.", extensions=needs("exchange:write", OPERATOR)
    )
    async def exchange_points(self, info: strawberry.Info, input: ExchangePointsInput) -> ExchangePayload:
        principal = principal_of(info)
        if principal.partner_kind != "OPERATOR":
            raise forbidden("Only an OPERATOR exchanges its members' points.")
        return await mutate(
            info,
            lambda session: exchange_service.exchange_points(
                session=session,
                operator_id=principal.partner_id,
                member_external_id=input.member_external_id,
                receive_code=input.receive_code,
                points=input.points,
                idempotency_key=input.idempotency_key,
                now=utcnow(),
            ),
            lambda row, errors: ExchangePayload(exchange=Exchange.from_model(row), errors=errors),
        )
