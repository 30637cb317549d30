"""Issue 17, item 6: failed authentication at /oauth/token is throttled per (client id,
address) and per address, never per client id alone.

Over real HTTP against `live_server`: the test binds its client sockets to different
loopback addresses (127.0.0.2, 127.0.0.3, ...) so the gateway sees different callers. The
victim calls from 127.0.0.1 throughout.
"""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from auth.ratelimit import address_key
from tests.support.auth import register_partner

VICTIM_ADDRESS = "127.0.0.1"


@pytest.fixture
def settings(settings):
    # The default brakes (5 failures a minute per client id and address, 20 per address),
    # and a small per-client token budget so that spending it would show within a test.
    return dataclasses.replace(
        settings, auth_failures_per_minute=5, auth_failures_per_address_per_minute=20, token_rate_per_client="3/minute"
    )


def token_request(url: str, client_id: str, secret: str, *, source: str, headers: dict | None = None) -> httpx.Response:
    """POST /oauth/token (client_secret_basic) from a socket bound to `source`."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30) as http:
        return http.post(
            url + "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret), headers=headers
        )


async def _victim(db):
    return await register_partner(
        db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point=1
    )


async def test_bad_secrets_for_a_victims_client_id_brake_the_guesser_not_the_victim(db, live_server):
    victim = await _victim(db)

    guesses = [token_request(live_server.url, victim.client_id, f"cs_guess_{i}", source="127.0.0.2") for i in range(7)]
    mine = token_request(live_server.url, victim.client_id, victim.client_secret, source=VICTIM_ADDRESS)

    assert mine.status_code == 200, mine.text
    assert mine.json()["access_token"]
    assert [r.status_code for r in guesses] == [401] * 5 + [429] * 2
    assert guesses[-1].json()["error"] == "slow_down"
    assert 1 <= int(guesses[-1].headers["retry-after"]) <= 60
    # The guesser's address stays braked for that client id even with the right secret:
    # a correct guess cannot be told from a wrong one until the minute is over.
    assert token_request(live_server.url, victim.client_id, victim.client_secret, source="127.0.0.2").status_code == 429


async def test_one_address_spraying_client_ids_is_braked_for_every_client(db, live_server):
    victim = await _victim(db)
    other = await register_partner(
        db, code="busan-walk", kind="OPERATOR", scopes=["members:read"], unit_code="BWM", won_per_point=1
    )

    # Twenty failures over five made-up client ids: four each, under the per-client brake.
    spray = [
        token_request(live_server.url, f"cl_made_up_{i % 5}", "cs_guess", source="127.0.0.3").status_code
        for i in range(20)
    ]
    braked = token_request(live_server.url, other.client_id, other.client_secret, source="127.0.0.3")

    assert spray == [401] * 20
    assert braked.status_code == 429 and braked.json()["error"] == "slow_down"
    assert (
        token_request(live_server.url, other.client_id, other.client_secret, source=VICTIM_ADDRESS).status_code == 200
    )
    assert token_request(live_server.url, victim.client_id, victim.client_secret, source="127.0.0.4").status_code == 200


async def test_strangers_naming_a_client_id_spend_none_of_its_request_budget(db, live_server):
    victim = await _victim(db)

    # Eight failed requests naming the victim, from two addresses (four each, under every brake).
    strangers = [
        token_request(live_server.url, victim.client_id, "cs_guess", source=source).status_code
        for source in ("127.0.0.5", "127.0.0.6")
        for _ in range(4)
    ]
    own = [
        token_request(live_server.url, victim.client_id, victim.client_secret, source=VICTIM_ADDRESS) for _ in range(4)
    ]

    assert strangers == [401] * 8
    # The victim's own budget (3 a minute in this test) is whole, and still enforced.
    assert [r.status_code for r in own] == [200, 200, 200, 429]


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(db, live_server):
    """uvicorn trusts X-Forwarded-For from FORWARDED_ALLOW_IPS only (default 127.0.0.1, the
    reverse proxy of docs/operations.md). From any other peer the header changes nothing."""
    victim = await _victim(db)

    spoofed = [
        token_request(
            live_server.url,
            victim.client_id,
            "cs_guess",
            source="127.0.0.7",
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        ).status_code
        for i in range(6)
    ]
    assert spoofed == [401] * 5 + [429]

    # Through the trusted proxy (127.0.0.1), the forwarded address is the caller.
    via_proxy = [
        token_request(
            live_server.url,
            victim.client_id,
            "cs_guess",
            source="127.0.0.1",
            headers={"X-Forwarded-For": "203.0.113.7"},
        ).status_code
        for _ in range(6)
    ]
    assert via_proxy == [401] * 5 + [429]
    elsewhere = token_request(
        live_server.url,
        victim.client_id,
        victim.client_secret,
        source="127.0.0.1",
        headers={"X-Forwarded-For": "203.0.113.8"},
    )
    assert elsewhere.status_code == 200, elsewhere.text


def test_an_ipv6_caller_counts_as_its_slash_64():
    # One subscriber usually holds a whole /64: hopping inside it must not reset the brake.
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff:ffff:ffff:fffe") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key(None) == "unknown"
