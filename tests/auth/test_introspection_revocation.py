"""RFC 7662 introspection and RFC 7009 revocation over real HTTP."""

from __future__ import annotations

import time

import httpx

from tests.auth.conftest import VIEWER, claims_of, forge
from tests.support.auth import (
    ASSERTION_TYPE,
    PRIVATE_KEY_JWT,
    client_assertion,
    get_token,
    post_graphql,
    register_partner,
)


def introspect(live_server, token: str, auth) -> httpx.Response:
    return httpx.post(live_server.url + "/oauth/introspect", data={"token": token}, auth=auth)


def revoke(live_server, token: str, auth) -> httpx.Response:
    return httpx.post(
        live_server.url + "/oauth/revoke", data={"token": token, "token_type_hint": "access_token"}, auth=auth
    )


async def test_a_client_introspects_its_own_active_token(operator, live_server):
    reg = await operator()
    token = get_token(live_server.url, reg.client_id, reg.client_secret, scope="members:read")

    response = introspect(live_server, token, (reg.client_id, reg.client_secret))

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    claims = claims_of(token)
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == reg.client_id
    assert body["scope"] == "members:read"
    assert body["token_type"] == "Bearer"
    assert body["aud"] == live_server.settings.audience and body["iss"] == live_server.settings.issuer
    assert (body["exp"], body["iat"], body["jti"]) == (claims["exp"], claims["iat"], claims["jti"])
    assert body["partner"] == "seoul-walk" and body["partner_kind"] == "OPERATOR"


async def test_introspection_says_inactive_for_anything_not_usable(operator, live_server, server_keys):
    mine = await operator("seoul-walk")
    other = await operator("busan-walk")
    auth = (mine.client_id, mine.client_secret)
    token = get_token(live_server.url, mine.client_id, mine.client_secret)
    others_token = get_token(live_server.url, other.client_id, other.client_secret)
    now = int(time.time())
    expired = forge(
        server_keys, live_server, claims={**claims_of(token), "jti": "old", "iat": now - 999, "exp": now - 5}
    )

    for inactive in ("garbage", token[:-4] + "AAAA", expired, others_token):
        response = introspect(live_server, inactive, auth)
        assert response.status_code == 200
        assert response.json() == {"active": False}

    assert revoke(live_server, token, auth).status_code == 200
    assert introspect(live_server, token, auth).json() == {"active": False}


async def test_an_admin_client_introspects_any_token(db, operator, live_server):
    admin = await register_partner(db, code="program-office", kind="ADMIN", scopes=["admin"])
    reg = await operator()
    token = get_token(live_server.url, reg.client_id, reg.client_secret)

    body = introspect(live_server, token, (admin.client_id, admin.client_secret)).json()

    assert body["active"] is True and body["client_id"] == reg.client_id


async def test_introspection_and_revocation_need_client_authentication(operator, live_server):
    reg = await operator()
    token = get_token(live_server.url, reg.client_id, reg.client_secret)

    for endpoint in ("/oauth/introspect", "/oauth/revoke"):
        anonymous = httpx.post(live_server.url + endpoint, data={"token": token})
        wrong = httpx.post(live_server.url + endpoint, data={"token": token}, auth=(reg.client_id, "cs_wrong"))
        for response in (anonymous, wrong):
            assert response.status_code == 401
            assert response.json()["error"] == "invalid_client"
    assert post_graphql(live_server.url, token, VIEWER).status_code == 200


async def test_a_private_key_jwt_client_introspects_and_revokes_with_assertions(operator, live_server):
    reg = await operator(auth_method=PRIVATE_KEY_JWT)
    token = get_token(live_server.url, reg.client_id, None, private_key=reg.private_key)

    def with_assertion(endpoint: str) -> httpx.Response:
        data = {
            "token": token,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(reg.client_id, reg.private_key, live_server.settings.issuer),
        }
        return httpx.post(live_server.url + endpoint, data=data)

    assert with_assertion("/oauth/introspect").json()["active"] is True
    assert with_assertion("/oauth/revoke").status_code == 200
    assert with_assertion("/oauth/introspect").json() == {"active": False}
    assert post_graphql(live_server.url, token, VIEWER).status_code == 401


async def test_revocation_is_idempotent_and_ignores_unknown_tokens(operator, live_server):
    reg = await operator()
    auth = (reg.client_id, reg.client_secret)
    token = get_token(live_server.url, reg.client_id, reg.client_secret)

    assert revoke(live_server, token, auth).status_code == 200
    assert revoke(live_server, token, auth).status_code == 200
    assert revoke(live_server, "not-a-token-we-issued", auth).status_code == 200
    assert post_graphql(live_server.url, token, VIEWER).status_code == 401


async def test_a_client_cannot_revoke_another_clients_token(operator, live_server):
    mine = await operator("seoul-walk")
    other = await operator("busan-walk")
    others_token = get_token(live_server.url, other.client_id, other.client_secret)

    response = revoke(live_server, others_token, (mine.client_id, mine.client_secret))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert post_graphql(live_server.url, others_token, VIEWER).status_code == 200
