"""Limits at the OAuth endpoints (token, introspection, revocation), with `limits`.

- Requests per client id (`settings.token_rate_per_client`, default 60/minute) and per
  caller address (`settings.token_rate_per_address`, default 600/minute), moving windows.
- Failed client authentications: after `settings.auth_failures_per_minute` (5) failures
  in a minute for one client id, every request naming that client id gets 429 until the
  oldest failure is a minute old, even with the right credentials. That slows a guesser
  down to five guesses a minute; a legitimate client waits at most a minute.

Over a limit: HTTP 429, `Retry-After` (seconds), `{"error": "slow_down", ...}`.
Counters live in this process's memory: with N processes each allows the full rate.
"""
from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from gateway.settings import Settings


class EndpointLimiter:
    def __init__(self, settings: Settings) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_client = parse(settings.token_rate_per_client)
        self.per_address = parse(settings.token_rate_per_address)
        self.failures = RateLimitItemPerMinute(max(1, settings.auth_failures_per_minute))

    def admit(self, *, address: str | None, client_id: str | None) -> int | None:
        """Count one request; None if admitted, else the seconds to wait (Retry-After)."""
        if client_id and not self._limiter.test(self.failures, "failed", client_id):
            return self._retry_after(self.failures, "failed", client_id)
        checks = []
        if address:
            checks.append((self.per_address, "address", address))
        if client_id:
            checks.append((self.per_client, "client", client_id))
        for item, *ids in checks:
            if not self._limiter.hit(item, *ids):
                return self._retry_after(item, *ids)
        return None

    def failed_authentication(self, client_id: str | None) -> None:
        if client_id:
            self._limiter.hit(self.failures, "failed", client_id)

    def _retry_after(self, item, *ids: str) -> int:
        reset = self._limiter.get_window_stats(item, *ids).reset_time
        return max(1, math.ceil(reset - time.time()))
