"""Webhook endpoints and deliveries: every partner (webhooks:manage) sees its own only."""

from __future__ import annotations

import strawberry

from gateway import webhooks as webhook_service
from gateway.models.webhooks import DeliveryStatus
from gateway.models.webhooks import WebhookDelivery as DeliveryRow
from schema.errors import graphql_error
from schema.ids import decode_pk
from schema.pagination import Connection, paginate
from schema.permissions import needs, principal_of
from schema.types.webhooks import DeliveryStatusEnum, WebhookDelivery, WebhookEndpoint


@strawberry.type
class Query:
    @strawberry.field(description="The caller's own endpoints.", extensions=needs("webhooks:manage"))
    async def webhook_endpoints(self, info: strawberry.Info) -> list[WebhookEndpoint]:
        partner_id = principal_of(info).partner_id
        rows = (await info.context.session.execute(webhook_service.endpoints_of(partner_id))).scalars().all()
        return [WebhookEndpoint.from_model(row) for row in rows]

    @strawberry.field(description="The caller's deliveries, newest first.", extensions=needs("webhooks:manage"))
    async def webhook_deliveries(
        self,
        info: strawberry.Info,
        endpoint_id: strawberry.ID | None = None,
        status: DeliveryStatusEnum | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[WebhookDelivery]:
        partner_id = principal_of(info).partner_id
        endpoint_pk = None
        if endpoint_id is not None:
            endpoint_pk = decode_pk(endpoint_id, "WebhookEndpoint")
            if endpoint_pk is None or not await webhook_service.endpoint_exists(
                info.context.session, partner_id=partner_id, endpoint_id=endpoint_pk
            ):
                raise graphql_error("NOT_FOUND", "No such webhook endpoint")
        stmt = webhook_service.deliveries_of(
            partner_id, endpoint_id=endpoint_pk, status=DeliveryStatus(status.value) if status else None
        )
        return await paginate(
            info, stmt, key=DeliveryRow.id, first=first, after=after, to_node=WebhookDelivery.from_model
        )
