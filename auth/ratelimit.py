"""Limits at the OAuth endpoints (token, introspection, revocation), with `limits`.

- Requests per caller address (`settings.token_rate_per_address`, default 600/minute),
  counted on arrival.
- Requests per client id (`settings.token_rate_per_client`, default 60/minute), counted
  only for requests answered with success (so the client authenticated): a stranger naming
  a client id spends nothing of that client's budget.
- Failed client authentications, per (client id, address) (`auth_failures_per_minute`, 5)
  and per address (`auth_failures_per_address_per_minute`, 20): over either, the requests
  naming that client id from that address, or every request from that address, get 429
  until the oldest failure is a minute old, even with the right credentials. Never per
  client id alone: whoever guesses a victim's secret slows down only his own address; the
  victim, from its own address, still gets tokens. A guesser gets 5 guesses a minute per
  client id and 20 in all from one address.

The address is the peer that uvicorn reports (`request.client.host`). Behind a reverse proxy
that is the proxy, unless uvicorn trusts the proxy's X-Forwarded-For (`--proxy-headers`,
`FORWARDED_ALLOW_IPS`; docs/operations.md). IPv6 addresses count per /64, the block one
subscriber usually holds, so that hopping addresses inside it gains nothing.

Counters live in Redis when `GATEWAY_REDIS_URL` is set (shared by every process and
replica), else in this process (with N processes each allows the full rate); while Redis
cannot be reached, in this process (gateway/limits_storage.py).
Over a limit: HTTP 429, `Retry-After` (seconds), `{"error": "slow_down", ...}`.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Awaitable, Callable

from limits import RateLimitItem, RateLimitItemPerMinute, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from gateway.limits_storage import SharedCounters
from gateway.settings import Settings


def address_key(host: str | None) -> str:
    """Who a peer address counts as: the IPv4 address, or the IPv6 /64 it lies in."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


class EndpointLimiter:
    def __init__(self, settings: Settings, counters: SharedCounters | None = None) -> None:
        self.counters = counters or SharedCounters(settings)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared = MovingWindowRateLimiter(self.counters.window_storage()) if self.counters.shared else None
        self.per_client = parse(settings.token_rate_per_client)
        self.per_address = parse(settings.token_rate_per_address)
        self.pair_failures = RateLimitItemPerMinute(max(1, settings.auth_failures_per_minute))
        self.address_failures = RateLimitItemPerMinute(max(1, settings.auth_failures_per_address_per_minute))

    async def admit(self, *, address: str | None, client_id: str | None) -> int | None:
        """Count one request; None if admitted, else the seconds to wait (Retry-After)."""
        return await self._run(self._admit, address_key(address), client_id)

    async def authenticated(self, *, client_id: str | None) -> None:
        """A request of this client succeeded: it counts against the client's own budget."""
        if client_id:
            await self._run(self._hit_client, None, client_id)

    async def failed_authentication(self, *, address: str | None, client_id: str | None) -> None:
        await self._run(self._hit_failure, address_key(address), client_id)

    async def _admit(self, limiter: MovingWindowRateLimiter, address: str, client_id: str | None) -> int | None:
        if not await limiter.test(self.address_failures, "failed-address", address):
            return await self._retry_after(limiter, self.address_failures, "failed-address", address)
        if client_id and not await limiter.test(self.pair_failures, "failed-pair", client_id, address):
            return await self._retry_after(limiter, self.pair_failures, "failed-pair", client_id, address)
        if not await limiter.hit(self.per_address, "address", address):
            return await self._retry_after(limiter, self.per_address, "address", address)
        if client_id and not await limiter.test(self.per_client, "client", client_id):
            return await self._retry_after(limiter, self.per_client, "client", client_id)
        return None

    async def _hit_client(self, limiter: MovingWindowRateLimiter, _address: None, client_id: str) -> None:
        await limiter.hit(self.per_client, "client", client_id)

    async def _hit_failure(self, limiter: MovingWindowRateLimiter, address: str, client_id: str | None) -> None:
        await limiter.hit(self.address_failures, "failed-address", address)
        if client_id:
            await limiter.hit(self.pair_failures, "failed-pair", client_id, address)

    async def _run(self, step: Callable[..., Awaitable], address: str | None, client_id: str | None):
        return await self.counters.decide(
            "oauth",
            lambda: step(self._shared, address, client_id),
            lambda: step(self._local, address, client_id),
        )

    @staticmethod
    async def _retry_after(limiter: MovingWindowRateLimiter, item: RateLimitItem, *ids: str) -> int:
        reset = (await limiter.get_window_stats(item, *ids)).reset_time
        return max(1, math.ceil(reset - time.time()))
