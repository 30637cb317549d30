"""Webhook endpoints and deliveries."""

from __future__ import annotations

import strawberry

from gateway.models.webhooks import DeliveryStatus
from gateway.models.webhooks import WebhookDelivery as DeliveryRow
from gateway.models.webhooks import WebhookEndpoint as EndpointRow
from schema.dataloaders import by_column
from schema.ids import encode_id
from schema.scalars import DateTime

DeliveryStatusEnum = strawberry.enum(DeliveryStatus, name="DeliveryStatus")


@strawberry.type
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    event_types: list[str]
    enabled: bool
    created_at: DateTime
    disabled_reason: str | None = strawberry.field(
        description='Why it is disabled: "gone" (it answered 410) or "deleted"; null while enabled.'
    )

    @classmethod
    def from_model(cls, row: EndpointRow | None) -> WebhookEndpoint | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("WebhookEndpoint", row.id)),
            url=row.url,
            event_types=list(row.event_types or []),
            enabled=row.enabled,
            created_at=row.created_at,
            disabled_reason=row.disabled_reason,
        )


def _endpoint_loader(ctx):
    return by_column(ctx, EndpointRow.id)


@strawberry.type
class WebhookDelivery:
    id: strawberry.ID
    event_id: str = strawberry.field(description="The event's id; equal to the webhook-id header.")
    event_type: str
    status: DeliveryStatusEnum
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: DateTime | None
    created_at: DateTime
    endpoint_id: strawberry.Private[int]

    @strawberry.field
    async def endpoint(self, info: strawberry.Info) -> WebhookEndpoint:
        return WebhookEndpoint.from_model(
            await info.context.loaders.get("webhook_endpoint", _endpoint_loader).load(self.endpoint_id)
        )

    @classmethod
    def from_model(cls, row: DeliveryRow | None) -> WebhookDelivery | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("WebhookDelivery", row.id)),
            event_id=row.event_id,
            event_type=row.event_type,
            status=row.status,
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            next_attempt_at=row.next_attempt_at,
            created_at=row.created_at,
            endpoint_id=row.endpoint_id,
        )
