"""A Redis database number of this pytest process's own, for the `redis_url` fixture.

Several pytest processes share the machine's Redis (xdist workers, and other runs at the same
time), and a test empties its database (FLUSHDB) before and after use. So each process claims
one of the numbers 1..15 with a key in database 0 (`SET … NX` with an expiry, renewed at each
use and deleted at the end), and a killed run's claim lapses by itself. Database 0 is left to
tests that share it by key prefix.
"""

from __future__ import annotations

import os
import time
import urllib.parse
import uuid

import redis

CLAIM = "mileage-gateway-tests:redis-db:{}"
CLAIM_SECONDS = 600  # a claim outlives the longest test by far; renewed at each use
NUMBERS = range(1, 16)


class RedisDatabases:
    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.base = f"{parts.scheme}://{parts.netloc}"  # the database path, if any, is ours to choose
        self.owner = f"pid={os.getpid()} {uuid.uuid4().hex[:8]}"
        self.number: int | None = None
        self._control: redis.Redis | None = None

    def reachable(self) -> str | None:
        """None, or why the server cannot be used."""
        try:
            self._client(0).ping()
        except redis.RedisError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _client(self, number: int) -> redis.Redis:
        if number == 0:
            if self._control is None:
                self._control = redis.Redis.from_url(f"{self.base}/0", socket_timeout=5, socket_connect_timeout=2)
            return self._control
        return redis.Redis.from_url(f"{self.base}/{number}", socket_timeout=5, socket_connect_timeout=2)

    def claim(self, wait_seconds: float = 60) -> str:
        """`redis://host:port/<n>`, a database nobody else uses now, empty."""
        control = self._client(0)
        if self.number is not None:
            key = CLAIM.format(self.number)
            if control.get(key) == self.owner.encode():  # still ours: renew
                control.expire(key, CLAIM_SECONDS)
                return self._emptied(self.number)
        self.number = None
        deadline = time.monotonic() + wait_seconds
        while True:
            for number in NUMBERS:
                if control.set(CLAIM.format(number), self.owner, nx=True, ex=CLAIM_SECONDS):
                    self.number = number
                    return self._emptied(number)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"all Redis databases {NUMBERS.start}..{NUMBERS.stop - 1} are claimed by other test runs"
                )
            time.sleep(0.5)

    def _emptied(self, number: int) -> str:
        client = self._client(number)
        try:
            client.flushdb()
        finally:
            client.close()
        return f"{self.base}/{number}"

    def empty(self) -> None:
        if self.number is not None:
            self._emptied(self.number)

    def release(self) -> None:
        if self.number is None or self._control is None:
            return
        key = CLAIM.format(self.number)
        try:
            self.empty()
            if self._control.get(key) == self.owner.encode():
                self._control.delete(key)
        except redis.RedisError:
            pass  # the claim lapses by itself
        finally:
            self._control.close()
            self.number = None
