"""Per-client limits for `/graphql`: a token bucket and a cap on concurrent requests.

The contract ("Rate limits") asks for a token bucket per client that admits at least
`rate_per_second` requests a second with bursts of `rate_burst`, and at most
`max_concurrent` requests of one client in flight. The bucket is falconry's
`token-bucket` (the `limits` package has only window strategies, no token bucket).

`ClientLimiter` keeps the state in this process's memory: with N worker processes each
admits the full rate. `SharedClientLimiter` keeps it in Redis (gateway/limits_storage.py)
when `GATEWAY_REDIS_URL` is set, so the limits hold across processes and replicas, and
falls back to a `ClientLimiter` while Redis cannot be reached. `client_limiter` picks one.
Both answer `await acquire(client_id)` with a `Refusal` or a slot to `await release()`.
Plain logic, no web framework: schema/http.py turns a refusal into HTTP 429.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import token_bucket

from gateway.limits_storage import STORE_ERRORS, RedisClientBucket, SharedCounters


@dataclass(frozen=True)
class Refusal:
    #: "rate" (the bucket is empty) or "concurrency" (too many requests in flight).
    limit: str
    #: Whole seconds to wait before trying again (HTTP Retry-After), at least 1.
    retry_after: int
    message: str


class ClientLimiter:
    """`admit(client_id)` before a request, `release(client_id)` after an admitted one."""

    def __init__(self, *, rate_per_second: float, burst: int, max_concurrent: int) -> None:
        self.rate = float(rate_per_second)
        self.burst = int(burst)
        self.max_concurrent = int(max_concurrent)
        self._storage = token_bucket.MemoryStorage()
        self._bucket = token_bucket.Limiter(self.rate, self.burst, self._storage)
        self._in_flight: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings) -> ClientLimiter:
        return cls(
            rate_per_second=settings.rate_per_second,
            burst=settings.rate_burst,
            max_concurrent=settings.max_concurrent,
        )

    def admit(self, client_id: str) -> Refusal | None:
        """None when admitted (the caller must `release` afterwards), else why not.

        Runs without awaiting, so on one event loop the check and the count are atomic.
        A request refused for concurrency spends no token."""
        in_flight = self._in_flight.get(client_id, 0)
        if in_flight >= self.max_concurrent:
            return self.refusal("concurrency", 1)
        if not self._bucket.consume(client_id):
            return self.refusal("rate", self._seconds_to_next_token(client_id))
        self._in_flight[client_id] = in_flight + 1
        return None

    def release(self, client_id: str) -> None:
        left = self._in_flight.get(client_id, 0) - 1
        if left > 0:
            self._in_flight[client_id] = left
        else:
            self._in_flight.pop(client_id, None)

    def in_flight(self, client_id: str) -> int:
        return self._in_flight.get(client_id, 0)

    async def acquire(self, client_id: str) -> Refusal | _LocalSlot:
        refusal = self.admit(client_id)
        return refusal if refusal is not None else _LocalSlot(self, client_id)

    def refusal(self, limit: str, retry_after: int) -> Refusal:
        if limit == "concurrency":
            message = (
                f"More than {self.max_concurrent} concurrent requests from this client; retry when one has finished."
            )
        else:
            message = f"Rate limit exceeded for this client ({self.rate:g} requests a second, bursts of {self.burst})."
        return Refusal(limit, retry_after, message)

    def _seconds_to_next_token(self, client_id: str) -> int:
        missing = max(0.0, 1.0 - self._storage.get_token_count(client_id))
        return max(1, math.ceil(missing / self.rate))


class _LocalSlot:
    def __init__(self, limiter: ClientLimiter, client_id: str) -> None:
        self._limiter, self._client_id = limiter, client_id

    async def release(self) -> None:
        self._limiter.release(self._client_id)


class SharedClientLimiter:
    """The same limits kept in Redis, shared by every process; local while Redis is down."""

    def __init__(self, counters: SharedCounters, local: ClientLimiter, *, slot_ttl: int) -> None:
        self.counters = counters
        self.local = local
        self.rate, self.burst, self.max_concurrent = local.rate, local.burst, local.max_concurrent
        self._redis = RedisClientBucket(
            counters, rate=local.rate, burst=local.burst, max_concurrent=local.max_concurrent, slot_ttl=slot_ttl
        )

    async def acquire(self, client_id: str) -> Refusal | _LocalSlot | _SharedSlot:
        return await self.counters.decide(
            "graphql", lambda: self._shared(client_id), lambda: self.local.acquire(client_id)
        )

    async def _shared(self, client_id: str) -> Refusal | _SharedSlot:
        outcome = await self._redis.acquire(client_id)
        if isinstance(outcome, str):
            return _SharedSlot(self.counters, self._redis, client_id, outcome)
        return self.local.refusal(*outcome)

    def in_flight(self, client_id: str) -> int:
        """Requests in flight admitted by this process's own counters (while Redis is down)."""
        return self.local.in_flight(client_id)


class _SharedSlot:
    def __init__(self, counters: SharedCounters, bucket: RedisClientBucket, client_id: str, slot: str) -> None:
        self._counters, self._bucket, self._client_id, self._slot = counters, bucket, client_id, slot

    async def release(self) -> None:
        # Shielded: a cancelled request still frees its slot. If Redis fails here the slot
        # expires after `concurrency_slot_ttl_seconds`.
        try:
            await asyncio.shield(self._bucket.release(self._client_id, self._slot))
        except STORE_ERRORS as error:
            self._counters.failed(error)


def client_limiter(settings, counters: SharedCounters) -> ClientLimiter | SharedClientLimiter:
    """The `/graphql` per-client limiter: in Redis when configured, else in this process."""
    local = ClientLimiter.from_settings(settings)
    if not counters.shared:
        return local
    return SharedClientLimiter(counters, local, slot_ttl=settings.concurrency_slot_ttl_seconds)
