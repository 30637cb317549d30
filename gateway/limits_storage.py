"""Where the limit counters live: Redis when `GATEWAY_REDIS_URL` is set, else this process.

With several worker processes or replicas, counters kept in each process's memory admit
N times every limit; in Redis they are shared. `SharedCounters` holds the one Redis
connection pool of a process, the key prefix, and what to do when Redis cannot be reached.

Redis unreachable: the limiters fall back to their in-process counters (the behaviour
without Redis) and try Redis again after `RETRY_SECONDS`. Each fallback logs one warning
and counts `gateway_limits_store_unavailable_total`. We fail open to local counters, not
closed, because failing closed would turn a Redis outage into an outage of every partner
API (tills stop taking payments), while the local counters still bound each process (a
guesser gets N x 5 tries a minute instead of 5). Calls time out after `TIMEOUT_SECONDS`,
so a Redis that hangs costs a request at most that once per `RETRY_SECONDS`.

`RedisClientBucket` is the GraphQL per-client limit in Redis: a token bucket and a set of
concurrency slots, checked and taken in one Lua script (atomic across processes). Each
slot carries its own expiry, so the slots of a worker that crashed mid-request are freed
after `concurrency_slot_ttl_seconds` instead of never.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import limits.errors
import redis.asyncio
import redis.exceptions
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from prometheus_client import Counter

from gateway.metrics import REGISTRY
from gateway.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

TIMEOUT_SECONDS = 0.5
RETRY_SECONDS = 5.0

#: What a Redis that is down, unreachable or too slow raises through either client.
STORE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisError,
    limits.errors.StorageError,
    OSError,
    asyncio.TimeoutError,
)

STORE_UNAVAILABLE = Counter(
    "gateway_limits_store_unavailable_total",
    "Limit decisions taken with this process's own counters because Redis (GATEWAY_REDIS_URL) "
    "could not be reached, by limiter.",
    ["limiter"],
    registry=REGISTRY,
)


class SharedCounters:
    """The Redis connection (or none) that every limiter of one process uses."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.redis_key_prefix
        self.redis: redis.asyncio.Redis | None = None
        if settings.redis_url:
            self.redis = redis.asyncio.Redis.from_url(
                settings.redis_url,
                socket_timeout=TIMEOUT_SECONDS,
                socket_connect_timeout=TIMEOUT_SECONDS,
                health_check_interval=30,
            )
        self._down_until = 0.0

    @classmethod
    def for_state(cls, state: Any) -> SharedCounters:
        """One instance per application (`state.extra`), shared by the GraphQL and OAuth limiters."""
        counters = state.extra.get("limit_counters")
        if counters is None:
            counters = state.extra["limit_counters"] = cls(state.settings)
        return counters

    @property
    def shared(self) -> bool:
        return self.redis is not None

    async def decide(self, limiter: str, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        """`shared()` (in Redis) when Redis is configured and answering, else `local()`.

        `limiter` labels the metric counting the decisions taken locally for want of Redis."""
        if self.redis is not None and time.monotonic() >= self._down_until:
            try:
                return await shared()
            except STORE_ERRORS as error:
                self.failed(error)
        if self.redis is not None:
            STORE_UNAVAILABLE.labels(limiter).inc()
        return await local()

    def failed(self, error: BaseException) -> None:
        """A Redis call failed: log once per back-off, then leave Redis alone for a while."""
        if time.monotonic() >= self._down_until:
            log.warning(
                "limit counters: Redis unreachable (%s: %s); using this process's counters for %ss",
                type(error).__name__,
                error,
                RETRY_SECONDS,
            )
        self._down_until = time.monotonic() + RETRY_SECONDS

    def window_storage(self) -> Storage:
        """Storage for `limits` window strategies: Redis (on this pool) or this process."""
        if self.redis is None:
            return MemoryStorage()
        # The URI only selects the storage class: connections come from our pool.
        return RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=f"{self.prefix}:limits",
            connection_pool=self.redis.connection_pool,
            wrap_exceptions=True,
        )

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))


# KEYS[1]: the bucket (hash: tokens, ts in ms); KEYS[2]: the slots (sorted set: slot id ->
# expiry in ms). ARGV: rate a second, burst, max concurrent, slot id, slot ttl in ms.
# Returns {0, 0} admitted (slot taken), {1, 0} too many in flight (no token spent),
# {2, ms} bucket empty (ms until the next token). Redis's clock, so replicas agree.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return {1, 0}
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil or ts == nil then
  tokens, ts = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) / 1000 * rate)
if tokens < 1 then
  return {2, math.ceil((1 - tokens) / rate * 1000)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
return {0, 0}
"""


class RedisClientBucket:
    """Token bucket plus concurrency slots per client id, in Redis (raises STORE_ERRORS)."""

    def __init__(
        self, counters: SharedCounters, *, rate: float, burst: int, max_concurrent: int, slot_ttl: int
    ) -> None:
        assert counters.redis is not None
        self.counters = counters
        self.rate, self.burst, self.max_concurrent = rate, burst, max_concurrent
        self.slot_ttl_ms = max(1, slot_ttl) * 1000
        self._acquire = counters.redis.register_script(_ACQUIRE)

    def _keys(self, client_id: str) -> list[str]:
        # One hash tag per client: both keys land on one Redis Cluster node.
        return [
            self.counters.key("gql", f"{{{client_id}}}", "bucket"),
            self.counters.key("gql", f"{{{client_id}}}", "slots"),
        ]

    async def acquire(self, client_id: str) -> tuple[str, int] | str:
        """A new slot id when admitted, else ("concurrency" | "rate", seconds to wait)."""
        slot = uuid.uuid4().hex
        outcome, wait_ms = await self._acquire(
            keys=self._keys(client_id),
            args=[repr(float(self.rate)), self.burst, self.max_concurrent, slot, self.slot_ttl_ms],
        )
        if outcome == 0:
            return slot
        if outcome == 1:
            return "concurrency", 1
        return "rate", max(1, math.ceil(int(wait_ms) / 1000))

    async def release(self, client_id: str, slot: str) -> None:
        await self.counters.redis.zrem(self._keys(client_id)[1], slot)
