"""Admin mutations: partners, clients, agreements."""

from __future__ import annotations

from decimal import Decimal as PyDecimal

import strawberry

from auth import clients as client_service
from gateway import partners as partner_service
from gateway.models import ClientAuthMethod, PartnerKind, SettlementPeriod
from schema.errors import UserError, mutate
from schema.permissions import ADMIN, ALL_KINDS, needs, principal_of
from schema.scalars import Date, Decimal
from schema.types.partners import (
    Agreement,
    Client,
    ClientAuthMethodEnum,
    Partner,
    PartnerKindEnum,
    SettlementPeriodEnum,
)


@strawberry.input
class CreatePartnerInput:
    code: str
    name: str
    kind: PartnerKindEnum
    unit_code: str | None = strawberry.field(default=None, description="OPERATOR only.")
    won_per_point: Decimal | None = strawberry.field(default=None, description="OPERATOR only.")
    operator_code: str | None = strawberry.field(
        default=None, description="MERCHANT only: code of the operator it is affiliated with."
    )


@strawberry.type
class PartnerPayload:
    partner: Partner | None
    errors: list[UserError]


@strawberry.input
class CreateClientInput:
    partner_code: str
    scopes: list[str]
    auth_method: ClientAuthMethodEnum
    jwks: str | None = strawberry.field(
        default=None, description="PRIVATE_KEY_JWT only: the client's public keys as a JWKS JSON document."
    )


@strawberry.type
class CreateClientPayload:
    client: Client | None
    client_secret: str | None = strawberry.field(description="Shown once, for CLIENT_SECRET_* methods.")
    errors: list[UserError]


@strawberry.input
class ClientIdInput:
    client_id: str


@strawberry.type
class ClientPayload:
    client: Client | None
    client_secret: str | None = strawberry.field(description="Shown once, after a rotation.")
    errors: list[UserError]


@strawberry.input
class CreateAgreementInput:
    code: str
    operator_a_code: str
    operator_b_code: str
    cross_redemption: bool
    point_exchange: bool
    fee_bps: int
    settlement_period: SettlementPeriodEnum
    starts_on: Date
    ends_on: Date | None = None


@strawberry.type
class AgreementPayload:
    agreement: Agreement | None
    errors: list[UserError]


#: Managing clients hands over a sibling's grant (a new secret) or takes it away: a scope
#: of its own, granted only by ADMIN at createClient (issue 17, the sibling takeover).
CLIENTS_MANAGE = "clients:manage"


def _scoped_partner(info) -> int | None:
    """ADMIN acts on any client (None); any other partner only on its own."""
    principal = principal_of(info)
    return None if principal.is_admin else principal.partner_id


@strawberry.type
class Mutation:
    @strawberry.mutation(description="ADMIN.", extensions=needs("admin", ADMIN))
    async def create_partner(self, info: strawberry.Info, input: CreatePartnerInput) -> PartnerPayload:
        return await mutate(
            info,
            lambda session: partner_service.create_partner(
                session=session,
                code=input.code,
                name=input.name,
                kind=PartnerKind(input.kind.value),
                unit_code=input.unit_code,
                won_per_point=PyDecimal(input.won_per_point) if input.won_per_point is not None else None,
                operator_code=input.operator_code,
            ),
            lambda p, errors: PartnerPayload(partner=Partner.from_model(p), errors=errors),
        )

    @strawberry.mutation(description="ADMIN.", extensions=needs("admin", ADMIN))
    async def create_client(self, info: strawberry.Info, input: CreateClientInput) -> CreateClientPayload:
        async def work(session):
            partner = await partner_service.require(session, input.partner_code, field=["input", "partnerCode"])
            return await client_service.create_client(
                session=session,
                partner=partner,
                scopes=list(input.scopes),
                auth_method=ClientAuthMethod(input.auth_method.value),
                jwks=input.jwks,
            )

        return await mutate(
            info,
            work,
            lambda r, errors: CreateClientPayload(
                client=Client.from_model(r[0]) if r else None, client_secret=r[1] if r else None, errors=errors
            ),
        )

    @strawberry.mutation(
        description=(
            "ADMIN, or a partner's client with clients:manage for its partner's clients. The old secret "
            "stops at once, and so does every access token the client holds."
        ),
        extensions=needs(CLIENTS_MANAGE, *ALL_KINDS),
    )
    async def rotate_client_secret(self, info: strawberry.Info, input: ClientIdInput) -> ClientPayload:
        return await mutate(
            info,
            lambda session: client_service.rotate_secret(
                session=session, client_id=input.client_id, partner_id=_scoped_partner(info)
            ),
            lambda r, errors: ClientPayload(
                client=Client.from_model(r[0]) if r else None, client_secret=r[1] if r else None, errors=errors
            ),
        )

    @strawberry.mutation(
        description=(
            "ADMIN, or a partner's client with clients:manage for its partner's clients. The client gets "
            "no new token, and every access token it holds is refused at once."
        ),
        extensions=needs(CLIENTS_MANAGE, *ALL_KINDS),
    )
    async def disable_client(self, info: strawberry.Info, input: ClientIdInput) -> ClientPayload:
        return await mutate(
            info,
            lambda session: client_service.disable_client(
                session=session, client_id=input.client_id, partner_id=_scoped_partner(info)
            ),
            lambda c, errors: ClientPayload(
                client=Client.from_model(c) if c else None, client_secret=None, errors=errors
            ),
        )

    @strawberry.mutation(description="ADMIN.", extensions=needs("admin", ADMIN))
    async def create_agreement(self, info: strawberry.Info, input: CreateAgreementInput) -> AgreementPayload:
        return await mutate(
            info,
            lambda session: partner_service.create_agreement(
                session=session,
                code=input.code,
                operator_a_code=input.operator_a_code,
                operator_b_code=input.operator_b_code,
                cross_redemption=input.cross_redemption,
                point_exchange=input.point_exchange,
                fee_bps=input.fee_bps,
                settlement_period=SettlementPeriod(input.settlement_period.value),
                starts_on=input.starts_on,
                ends_on=input.ends_on,
            ),
            lambda a, errors: AgreementPayload(agreement=Agreement.from_model(a) if a else None, errors=errors),
        )
