"""Per-client limits for `/graphql`: a token bucket and a cap on concurrent requests.

The contract ("Rate limits") asks for a token bucket per client that admits at least
`rate_per_second` requests a second with bursts of `rate_burst`, and at most
`max_concurrent` requests of one client in flight. The bucket is falconry's
`token-bucket` (the `limits` package has only window strategies, no token bucket).

State lives in this process's memory: with N worker processes each admits the full
rate. Plain logic, no web framework: schema/http.py turns a refusal into HTTP 429.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import token_bucket


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
    def from_settings(cls, settings) -> "ClientLimiter":
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
            return Refusal(
                "concurrency",
                1,
                f"More than {self.max_concurrent} concurrent requests from this client; retry when one has finished.",
            )
        if not self._bucket.consume(client_id):
            return Refusal(
                "rate",
                self._seconds_to_next_token(client_id),
                f"Rate limit exceeded for this client ({self.rate:g} requests a second, bursts of {self.burst}).",
            )
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

    def _seconds_to_next_token(self, client_id: str) -> int:
        missing = max(0.0, 1.0 - self._storage.get_token_count(client_id))
        return max(1, math.ceil(missing / self.rate))
