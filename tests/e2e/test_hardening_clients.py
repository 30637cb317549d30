"""Client management, over real HTTP (issue 17, items 3 and 10).

* Sibling takeover: a partner's client without `clients:manage` can neither rotate the
  secret of, nor disable, any client of its partner (FORBIDDEN, nothing changes); with
  the scope it can; ADMIN always can.
* A secret rotation or a disable revokes every access token the client holds at once,
  even one issued in the same second as the rotation; tokens issued after it work.
"""

from __future__ import annotations

import base64
import json

import httpx
import sqlalchemy as sa

from gateway.models import OAuthClient
from tests.support.auth import GatewayClient, add_client, get_token, post_graphql, register_partner, request_token

ROTATE = "mutation($i: ClientIdInput!) { rotateClientSecret(input: $i) { client { clientId } clientSecret errors { code } } }"
DISABLE = "mutation($i: ClientIdInput!) { disableClient(input: $i) { client { clientId enabled } errors { code } } }"
CREATE_CLIENT = """mutation($i: CreateClientInput!) { createClient(input: $i) {
  client { clientId scopes } clientSecret errors { code field message } } }"""
VIEWER = "{ viewer { clientId scopes } }"


async def _merchant_world(db):
    """A merchant with a read-only client and a sibling that may write redemptions."""
    await register_partner(
        db, code="seoul-walking", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point="1"
    )
    reader = await register_partner(
        db, code="mangwon-bakery", kind="MERCHANT", scopes=["redemptions:read"], operator_code="seoul-walking"
    )
    writer = await add_client(db, "mangwon-bakery", scopes=["redemptions:write", "redemptions:read"])
    return reader, writer


def _codes(body: dict) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _status(live_server, token: str) -> int:
    return post_graphql(live_server.url, token, VIEWER).status_code


def _introspect(live_server, token: str, client) -> dict:
    return httpx.post(
        live_server.url + "/oauth/introspect",
        data={"token": token},
        auth=(client.client_id, client.client_secret),
        timeout=30,
    ).json()


async def _client_row(db, client_id: str) -> OAuthClient:
    async with db.session() as session:
        return (await session.execute(sa.select(OAuthClient).where(OAuthClient.client_id == client_id))).scalar_one()


async def test_a_read_only_sibling_cannot_take_over_the_writing_client(live_server, db):
    """The attack of issue 17: a redemptions:read client rotates its redemptions:write
    sibling's secret and mints a write token. Now FORBIDDEN, and nothing changes."""
    reader, writer = await _merchant_world(db)
    attacker = GatewayClient.of(live_server.url, reader)
    writer_token = get_token(live_server.url, writer.client_id, writer.client_secret)
    before = await _client_row(db, writer.client_id)

    for mutation in (ROTATE, DISABLE):
        for target in (writer.client_id, reader.client_id):  # its sibling, and itself
            body = attacker.gql(mutation, i={"clientId": target})
            assert _codes(body) == ["FORBIDDEN"], body
            assert body["data"] is None or all(v is None for v in body["data"].values())
            assert "cs_" not in json.dumps(body)

    after = await _client_row(db, writer.client_id)
    assert (after.secret_hash, after.enabled, after.token_epoch) == (before.secret_hash, True, before.token_epoch)
    # The writer's secret and the token it holds still work.
    assert _status(live_server, writer_token) == 200
    assert request_token(live_server.url, writer.client_id, writer.client_secret).status_code == 200
    assert _status(live_server, attacker.token) == 200


async def test_clients_manage_lets_a_partner_manage_its_own_clients_and_admin_any(live_server, db):
    reader, writer = await _merchant_world(db)
    admin_reg = await register_partner(db, code="program-office", kind="ADMIN", scopes=["admin"])
    admin = GatewayClient.of(live_server.url, admin_reg)

    # ADMIN grants the scope at createClient, to any partner kind.
    made = admin.data(
        CREATE_CLIENT,
        i={"partnerCode": "mangwon-bakery", "scopes": ["clients:manage"], "authMethod": "CLIENT_SECRET_BASIC"},
    )
    assert made["createClient"]["errors"] == [] and made["createClient"]["client"]["scopes"] == ["clients:manage"]
    manager = GatewayClient(
        live_server.url, made["createClient"]["client"]["clientId"], made["createClient"]["clientSecret"]
    )
    metadata = httpx.get(live_server.url + "/.well-known/oauth-authorization-server", timeout=30).json()
    assert "clients:manage" in metadata["scopes_supported"]

    rotated = manager.data(ROTATE, i={"clientId": writer.client_id})["rotateClientSecret"]
    assert rotated["errors"] == [] and rotated["clientSecret"].startswith("cs_")
    assert request_token(live_server.url, writer.client_id, writer.client_secret).status_code == 401
    assert request_token(live_server.url, writer.client_id, rotated["clientSecret"]).status_code == 200

    # Still only its own partner's clients: another partner's answers like an unknown one.
    other = await register_partner(
        db, code="gyeonggi-steps", kind="OPERATOR", scopes=["members:read"], unit_code="GHS", won_per_point="1"
    )
    assert manager.data(DISABLE, i={"clientId": other.client_id})["disableClient"]["errors"] == [{"code": "NOT_FOUND"}]
    assert (await _client_row(db, other.client_id)).enabled is True

    assert manager.data(DISABLE, i={"clientId": reader.client_id})["disableClient"]["client"]["enabled"] is False
    # ADMIN needs no clients:manage, for any partner's client.
    assert admin.data(DISABLE, i={"clientId": other.client_id})["disableClient"]["client"]["enabled"] is False


async def test_a_rotation_revokes_tokens_issued_before_it_even_within_the_same_second(live_server, db):
    await register_partner(
        db, code="seoul-walking", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point="1"
    )
    target = await add_client(db, "seoul-walking", scopes=["members:read"])
    manager = GatewayClient.of(live_server.url, await add_client(db, "seoul-walking", scopes=["clients:manage"]))
    secret = target.client_secret
    same_second = 0
    for _ in range(20):
        before = get_token(live_server.url, target.client_id, secret)
        assert _status(live_server, before) == 200
        secret = manager.data(ROTATE, i={"clientId": target.client_id})["rotateClientSecret"]["clientSecret"]
        after = get_token(live_server.url, target.client_id, secret)
        # Right after the rotation: the old token is refused, the new one works.
        refused = post_graphql(live_server.url, before, VIEWER)
        assert refused.status_code == 401, refused.text
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert _status(live_server, after) == 200
        # Introspection agrees (the client asks about its own tokens).
        me = type("Creds", (), {"client_id": target.client_id, "client_secret": secret})
        assert _introspect(live_server, before, me) == {"active": False}
        assert _introspect(live_server, after, me)["active"] is True
        same_second += _claims(before)["iat"] == _claims(after)["iat"]
        if same_second >= 3:
            break
    assert same_second >= 1, "no rotation fell within the second of the token before it"


async def test_disabling_a_client_revokes_its_tokens_for_good(live_server, db):
    await register_partner(
        db, code="seoul-walking", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point="1"
    )
    target = await add_client(db, "seoul-walking", scopes=["members:read"])
    manager = GatewayClient.of(live_server.url, await add_client(db, "seoul-walking", scopes=["clients:manage"]))
    token = get_token(live_server.url, target.client_id, target.client_secret)
    assert _status(live_server, token) == 200

    assert manager.data(DISABLE, i={"clientId": target.client_id})["disableClient"]["client"]["enabled"] is False
    assert _status(live_server, token) == 401
    assert request_token(live_server.url, target.client_id, target.client_secret).status_code == 401

    # Enabled again (by the program office, in the database): the old token stays refused,
    # a new one works.
    async with db.transaction() as session:
        await session.execute(
            sa.update(OAuthClient).where(OAuthClient.client_id == target.client_id).values(enabled=True)
        )
    assert _status(live_server, token) == 401
    assert _status(live_server, get_token(live_server.url, target.client_id, target.client_secret)) == 200
