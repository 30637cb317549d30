"""Outbound address guard: where the gateway may send a request on a partner's behalf.

Webhook endpoints (gateway/webhooks.py) and connector base URLs (connectors/http_json.py)
are URLs a partner or an administrator types in; the gateway then sends requests there,
some with stored credentials. Without a guard, such a URL reaches what only the gateway's
host can reach: loopback services, the private network, a cloud metadata service.

* `check_url` at configuration: an http(s) URL without user info or fragment, whose host
  is not an IP literal of a refused kind (any spelling a resolver accepts: 2130706433,
  0x7f000001, 0177.0.0.1, [::1], ::ffff:127.0.0.1) nor a local name (localhost, *.internal).
* `vet_url`: `check_url`, then every address the host resolves to now.
* `resolve_public` at connection time: resolve, refuse when ANY address is refused, and
  return the checked addresses, to which the caller connects (connectors/guarded_http.py),
  so a DNS answer cannot change between the check and the connection.

`settings.webhook_allow_private` (GATEWAY_ALLOW_PRIVATE_ADDRESSES, or its older name
GATEWAY_WEBHOOK_ALLOW_PRIVATE) turns the guard off: development and tests only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from gateway.errors import InvalidInput

URL_MAX = 2048
#: Cloud metadata services (also covered by the link-local/private rules; named for clarity).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
BLOCKED_HOSTNAMES = frozenset(
    {"localhost", "metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}
)
BLOCKED_SUFFIXES = (".localhost", ".internal", ".local")


class UnsafeAddress(Exception):
    """A host resolves to an address the gateway may not send requests to."""


def address_refusal(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why no request may be sent to this IP address, or None when it is a public one."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if mapped is None and ip in _NAT64:  # 64:ff9b::a.b.c.d reaches a.b.c.d
            mapped = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if mapped is not None:
            reason = address_refusal(mapped)
            if reason:
                return reason
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a non-public address"
    return None


def ip_literal(host: str):
    """The IP address `host` spells, in any form a resolver reads as one, or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    # Forms such as "2130706433", "0x7f.1" or "0177.0.0.1" that resolvers read as IPv4.
    try:
        return ipaddress.ip_address(socket.inet_aton(host))
    except OSError:
        return None


def check_url(
    url: str, *, allow_private: bool, field: list[str] | None = None, what: str = "url", purpose: str = "webhooks go"
) -> tuple[str, str, int]:
    """The URL's (url, host, port) if requests may go to it as written (no name resolution);
    raises InvalidInput naming `what` otherwise."""
    field = field or ["input", "url"]
    if not isinstance(url, str) or len(url) > URL_MAX or any(c.isspace() for c in url):
        raise InvalidInput(f"{what} must be an http(s) URL of at most {URL_MAX} characters", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"{what} is not a valid URL", field=field) from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidInput(f"{what} must start with https:// (or http://)", field=field)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise InvalidInput(f"{what} has no host", field=field)
    if parts.username or parts.password:
        raise InvalidInput(f"{what} must not carry a user name or password", field=field)
    if parts.fragment:
        raise InvalidInput(f"{what} must not have a #fragment", field=field)
    port = port or (443 if scheme == "https" else 80)
    if not allow_private:
        literal = ip_literal(host)
        if literal is not None:
            reason = address_refusal(literal)
            if reason:
                raise InvalidInput(f"{what} points at {reason}; {purpose} to public addresses only", field=field)
        elif host in BLOCKED_HOSTNAMES or host.endswith(BLOCKED_SUFFIXES):
            raise InvalidInput(
                f"{what} names a local or internal host; {purpose} to public addresses only", field=field
            )
    return url, host, port


async def resolve_public(host: str, port: int, *, allow_private: bool, timeout: float = 5.0) -> list[str]:
    """The addresses `host` resolves to, all of them checked; raises UnsafeAddress when any is
    refused (one refused address is enough: a resolver may hand out either) and OSError when
    the name does not resolve."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM), timeout)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for address in addresses:
            reason = address_refusal(address.split("%", 1)[0])
            if reason:
                raise UnsafeAddress(f"{host} resolves to {reason}")
    return addresses


async def vet_url(
    url: str, *, allow_private: bool, field: list[str] | None = None, what: str = "url", purpose: str = "webhooks go"
) -> str:
    """`check_url`, then the host's resolved addresses (a name that does not resolve now is
    accepted: it is checked again at each connection). Call it outside a transaction."""
    url, host, port = check_url(url, allow_private=allow_private, field=field, what=what, purpose=purpose)
    if not allow_private and ip_literal(host) is None:
        try:
            await resolve_public(host, port, allow_private=False, timeout=3.0)
        except UnsafeAddress as exc:
            raise InvalidInput(
                f"{what} refused: {exc}; {purpose} to public addresses only", field=field or ["input", "url"]
            ) from exc
        except (TimeoutError, OSError):
            pass
    return url


__all__ = [
    "BLOCKED_HOSTNAMES",
    "METADATA_ADDRESSES",
    "URL_MAX",
    "UnsafeAddress",
    "address_refusal",
    "check_url",
    "ip_literal",
    "resolve_public",
    "vet_url",
]
