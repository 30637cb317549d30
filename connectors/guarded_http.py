"""An httpx transport that connects only to checked addresses (the SSRF guard at connection time).

Webhook delivery (connectors/webhooks.py) and connector runs (connectors/runner.py) send
requests to URLs partners and administrators typed in. `GuardedBackend` resolves the host
itself, refuses it when any address is loopback, private, link-local, shared or a metadata
address (gateway/addresses.py), and opens the TCP connection to the address it checked:
the name is looked up once, so a DNS answer cannot change between the check and the
connection. The URL, the Host header and TLS (SNI, certificate check) keep the host name.
"""

from __future__ import annotations

import httpcore
import httpx
from httpcore._backends.auto import AutoBackend

from gateway.addresses import UnsafeAddress, resolve_public, vet_url


class BlockedAddress(httpcore.ConnectError):
    """The host resolves to an address the gateway may not send requests to."""


class GuardedBackend(AutoBackend):
    """Resolves, checks and pins the address of every connection."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            addresses = await resolve_public(host, port, allow_private=self.allow_private, timeout=timeout or 5.0)
        except UnsafeAddress as exc:
            raise BlockedAddress(f"refused: {exc}") from None
        except (TimeoutError, OSError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await super().connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address for {host}")


def guarded_transport(*, allow_private: bool) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx has no public way to choose httpcore's network backend; the pool reads this
    # attribute whenever it opens a connection.
    transport._pool._network_backend = GuardedBackend(allow_private=allow_private)
    return transport


async def vet_outbound(cls: type, config: dict, *, allow_private: bool) -> None:
    """Refuse (InvalidInput on input.config) a connector configuration whose URLs
    (`cls.outbound_urls`, when the type has it) point at refused addresses. Call it outside
    a transaction: it resolves host names."""
    urls = getattr(cls, "outbound_urls", None)
    for key, url in (urls(config) if urls is not None else {}).items():
        await vet_url(
            url, allow_private=allow_private, field=["input", "config"], what=f"config: {key}", purpose="connectors go"
        )


def blocked(exc: BaseException) -> BlockedAddress | None:
    """The guard's refusal behind an httpx error, if that is what it was."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, BlockedAddress):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


__all__ = ["BlockedAddress", "GuardedBackend", "blocked", "guarded_transport", "vet_outbound"]
