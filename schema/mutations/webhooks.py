"""Webhook endpoints and redelivery: any partner (webhooks:manage), for itself only."""

from __future__ import annotations

import strawberry

from gateway import webhooks as webhook_service
from gateway.errors import DomainError, NotFound
from schema.errors import UserError, mutate
from schema.ids import decode_pk
from schema.permissions import needs, principal_of
from schema.types.webhooks import WebhookDelivery, WebhookEndpoint


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    event_types: list[str]


@strawberry.type
class CreateWebhookEndpointPayload:
    endpoint: WebhookEndpoint | None
    secret: str | None = strawberry.field(description="Signing secret, shown once: whsec_ followed by base64.")
    errors: list[UserError]


@strawberry.input
class DeleteWebhookEndpointInput:
    id: strawberry.ID


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None
    errors: list[UserError]


@strawberry.input
class RedeliverWebhookInput:
    delivery_id: strawberry.ID


@strawberry.type
class WebhookDeliveryPayload:
    delivery: WebhookDelivery | None
    errors: list[UserError]


def _pk(value: str, type_name: str, message: str, field: str) -> int:
    pk = decode_pk(value, type_name)
    if pk is None:
        raise NotFound(message, field=["input", field])
    return pk


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Any partner, for itself.", extensions=needs("webhooks:manage"))
    async def create_webhook_endpoint(
        self, info: strawberry.Info, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointPayload:
        ctx = info.context
        principal = principal_of(info)
        allow_private = ctx.settings.webhook_allow_private
        try:
            # Name resolution happens here, before the transaction opens.
            url = await webhook_service.vet_url(input.url, allow_private=allow_private)
        except DomainError as exc:
            ctx.audit.append((info.field_name, exc.code))
            return CreateWebhookEndpointPayload(endpoint=None, secret=None, errors=[UserError.of(exc)])
        return await mutate(
            info,
            lambda session: webhook_service.create_endpoint(
                session=session,
                secret_key=ctx.settings.secret_key,
                partner_id=principal.partner_id,
                url=url,
                event_types=input.event_types,
                allow_private=allow_private,
            ),
            lambda r, errors: CreateWebhookEndpointPayload(
                endpoint=WebhookEndpoint.from_model(r[0]) if r else None, secret=r[1] if r else None, errors=errors
            ),
        )

    @strawberry.mutation(extensions=needs("webhooks:manage"))
    async def delete_webhook_endpoint(
        self, info: strawberry.Info, input: DeleteWebhookEndpointInput
    ) -> WebhookEndpointPayload:
        principal = principal_of(info)

        async def work(session):
            pk = _pk(input.id, "WebhookEndpoint", "No such webhook endpoint", "id")
            return await webhook_service.delete_endpoint(
                session=session, partner_id=principal.partner_id, endpoint_id=pk
            )

        return await mutate(
            info, work, lambda e, errors: WebhookEndpointPayload(endpoint=WebhookEndpoint.from_model(e), errors=errors)
        )

    @strawberry.mutation(extensions=needs("webhooks:manage"))
    async def redeliver_webhook(self, info: strawberry.Info, input: RedeliverWebhookInput) -> WebhookDeliveryPayload:
        principal = principal_of(info)

        async def work(session):
            pk = _pk(input.delivery_id, "WebhookDelivery", "No such webhook delivery", "deliveryId")
            return await webhook_service.redeliver(session=session, partner_id=principal.partner_id, delivery_id=pk)

        return await mutate(
            info, work, lambda d, errors: WebhookDeliveryPayload(delivery=WebhookDelivery.from_model(d), errors=errors)
        )
