"""Webhook delivery over HTTP: sign with `standardwebhooks`, POST, report each attempt.

The domain half (endpoints, the dispatcher, claiming, the retry schedule) is
gateway/webhooks.py. Here:

* `WebhookSender` sends one attempt. Headers per Standard Webhooks: `webhook-id` (the
  event id, the same on every attempt), `webhook-timestamp` (Unix seconds of this attempt),
  `webhook-signature` ("v1," + base64 HMAC-SHA256 over "{id}.{timestamp}.{body}" with the
  endpoint's secret, made by `standardwebhooks.Webhook.sign`). Redirects are not followed
  and environment proxies are ignored.
* Unless private addresses are allowed, the connection goes through `GuardedBackend`
  (connectors/guarded_http.py, shared with connector runs): it resolves the host itself,
  refuses it when any address is loopback, private, link-local, shared or a metadata
  address, and connects to the address it checked (so a DNS answer
  cannot change between the check and the connection). TLS still verifies the host name.
* `DeliveryWorker` claims due deliveries (a lease per delivery, so several gateway processes
  share the work without sending one twice), sends them concurrently and records the
  outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from standardwebhooks import Webhook

from connectors.guarded_http import BlockedAddress, GuardedBackend, guarded_transport
from gateway import webhooks as service
from gateway.db import Database, utcnow
from gateway.jobs import new_owner, on_shutdown, state_extra
from gateway.settings import Settings

USER_AGENT = "mileage-gateway-webhooks/1"


def sign(*, secret: str, event_id: str, body: bytes, at: dt.datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    timestamp = dt.datetime.fromtimestamp(math.floor(at.timestamp()), tz=dt.UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, timestamp, body.decode()),
    }


class WebhookSender:
    def __init__(self, *, allow_private: bool, timeout_seconds: float = 10.0) -> None:
        self.timeout_seconds = timeout_seconds
        self.client = httpx.AsyncClient(
            transport=guarded_transport(allow_private=allow_private),
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def send(
        self, delivery: service.ClaimedDelivery, *, now: dt.datetime | None = None
    ) -> tuple[int | None, str | None]:
        """(HTTP status, error) of one attempt; status None when there was no answer."""
        headers = {
            "content-type": "application/json",
            **sign(secret=delivery.secret, event_id=delivery.event_id, body=delivery.body, at=now or utcnow()),
        }
        try:
            async with self.client.stream("POST", delivery.url, content=delivery.body, headers=headers) as response:
                code = response.status_code
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, BlockedAddress):
                return None, str(exc.__cause__)
            return None, f"cannot connect: {exc}"
        except httpx.TimeoutException:
            return None, f"no answer within {self.timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return code, None if 200 <= code < 300 else f"HTTP {code}"

    async def aclose(self) -> None:
        await self.client.aclose()


class DeliveryWorker:
    """Claims and sends due deliveries for one gateway process."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        owner: str | None = None,
        schedule: Sequence[float] | None = None,
        sender: WebhookSender | None = None,
        batch: int = 50,
        concurrency: int = 10,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.owner = owner or new_owner()
        self.schedule = tuple(schedule if schedule is not None else settings.webhook_retry_schedule)
        self.sender = sender or WebhookSender(
            allow_private=settings.webhook_allow_private, timeout_seconds=settings.webhook_timeout_seconds
        )
        self.batch = batch
        self.concurrency = concurrency
        self.clock = clock

    async def run_once(self) -> int:
        """Send one batch of due deliveries; returns how many were attempted."""
        if not await service.has_due(self.db, now=self.clock()):
            return 0
        claimed = await service.claim_due(
            db=self.db,
            secret_key=self.settings.secret_key,
            owner=self.owner,
            limit=self.batch,
            lease_seconds=2 * self.sender.timeout_seconds + 30,
            now=self.clock(),
        )
        gate = asyncio.Semaphore(self.concurrency)

        async def attempt(delivery: service.ClaimedDelivery) -> None:
            async with gate:
                code, error = await self.sender.send(delivery, now=self.clock())
                await service.record_attempt(
                    db=self.db,
                    delivery_id=delivery.id,
                    owner=self.owner,
                    status_code=code,
                    error=error,
                    schedule=self.schedule,
                    now=self.clock(),
                )

        await asyncio.gather(*(attempt(d) for d in claimed))
        return len(claimed)

    async def drain(self, *, rounds: int = 100) -> int:
        """Send until nothing is due (tests, the CLI); returns the attempts made."""
        total = 0
        for _ in range(rounds):
            n = await self.run_once()
            if n == 0:
                break
            total += n
        return total

    async def aclose(self) -> None:
        await self.sender.aclose()


def worker_for(state: Any) -> DeliveryWorker:
    """The process's delivery worker, kept on the app state (closed at shutdown)."""
    extra = state_extra(state)
    worker = extra.get("webhook_worker")
    if worker is None:
        worker = DeliveryWorker(db=state.db, settings=state.settings)
        extra["webhook_worker"] = worker
        on_shutdown(state, worker.aclose)
    return worker


__all__ = [
    "BlockedAddress",
    "DeliveryWorker",
    "GuardedBackend",
    "WebhookSender",
    "guarded_transport",
    "sign",
    "worker_for",
]
