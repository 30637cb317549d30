"""POST /oauth/token over real HTTP: the client_credentials grant with each client
authentication method, the scope policy, RFC 6749 errors and the failed-login brake."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import sqlalchemy as sa
from joserfc.jwk import OKPKey, RSAKey

from auth.clients import disable_client
from gateway.models import OAuthClient
from tests.auth.conftest import OPERATOR_SCOPES, VIEWER, b64, claims_of, header_of
from tests.support.auth import (
    CLIENT_SECRET_BASIC,
    CLIENT_SECRET_POST,
    PRIVATE_KEY_JWT,
    client_assertion,
    graphql,
    new_client_key,
    post_graphql,
    request_token,
)


def _viewer(live_server, token: str) -> dict:
    result = graphql(live_server.url, token, VIEWER)
    assert "errors" not in result, result
    return result["data"]["viewer"]


async def test_basic_client_gets_an_rfc9068_token_that_opens_graphql(operator, live_server):
    reg = await operator(auth_method=CLIENT_SECRET_BASIC)

    response = request_token(live_server.url, reg.client_id, reg.client_secret)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == live_server.settings.access_token_ttl <= 900
    assert sorted(body["scope"].split()) == OPERATOR_SCOPES
    header, claims = header_of(body["access_token"]), claims_of(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    jwks = httpx.get(live_server.url + "/.well-known/jwks.json").json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"] if k["alg"] == "ES256"}
    assert claims["iss"] == live_server.settings.issuer
    assert claims["aud"] == live_server.settings.audience
    assert claims["sub"] == claims["client_id"] == reg.client_id
    assert claims["partner"] == "seoul-walk" and claims["partner_kind"] == "OPERATOR"
    assert claims["jti"] and claims["exp"] - claims["iat"] == live_server.settings.access_token_ttl
    viewer = _viewer(live_server, body["access_token"])
    assert viewer == {
        "clientId": reg.client_id,
        "scopes": OPERATOR_SCOPES,
        "partner": {"code": "seoul-walk", "kind": "OPERATOR"},
    }


async def test_post_client_gets_a_token_with_credentials_in_the_body(operator, live_server):
    reg = await operator(auth_method=CLIENT_SECRET_POST)

    response = request_token(live_server.url, reg.client_id, reg.client_secret, method=CLIENT_SECRET_POST)

    assert response.status_code == 200, response.text
    assert _viewer(live_server, response.json()["access_token"])["clientId"] == reg.client_id


async def test_private_key_jwt_client_gets_a_token_with_aud_token_endpoint_or_issuer(operator, live_server):
    reg = await operator(auth_method=PRIVATE_KEY_JWT)
    assert reg.client_secret is None

    for audience in (live_server.url + "/oauth/token", live_server.settings.issuer):
        assertion = client_assertion(reg.client_id, reg.private_key, audience)
        response = request_token(live_server.url, reg.client_id, method=PRIVATE_KEY_JWT, assertion=assertion)
        assert response.status_code == 200, response.text
        assert _viewer(live_server, response.json()["access_token"])["clientId"] == reg.client_id


async def test_private_key_jwt_accepts_ed25519_and_rsa_client_keys(operator, live_server):
    keys = {
        "busan-walk": OKPKey.generate_key("Ed25519", private=True, auto_kid=True),
        "daegu-walk": RSAKey.generate_key(2048, private=True, auto_kid=True),
    }
    for code, key in keys.items():
        reg = await operator(code, auth_method=PRIVATE_KEY_JWT, private_key=key)
        assertion = client_assertion(reg.client_id, key, live_server.settings.issuer)
        response = request_token(live_server.url, reg.client_id, method=PRIVATE_KEY_JWT, assertion=assertion)
        assert response.status_code == 200, (code, response.text)


async def test_client_secrets_are_stored_only_as_argon2id_hashes(db, operator):
    reg = await operator()

    async with db.session() as session:
        stored = (
            await session.execute(sa.select(OAuthClient.secret_hash).where(OAuthClient.client_id == reg.client_id))
        ).scalar_one()

    assert stored.startswith("$argon2id$")
    assert reg.client_secret not in stored


async def test_a_private_key_jwt_assertion_cannot_be_replayed(operator, live_server):
    reg = await operator(auth_method=PRIVATE_KEY_JWT)
    assertion = client_assertion(reg.client_id, reg.private_key, live_server.url + "/oauth/token")

    first = request_token(live_server.url, reg.client_id, method=PRIVATE_KEY_JWT, assertion=assertion)
    replay = request_token(live_server.url, reg.client_id, method=PRIVATE_KEY_JWT, assertion=assertion)

    assert first.status_code == 200, first.text
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"
    assert "used before" in replay.json()["error_description"]


def _hs256_with_public_key(reg, audience: str) -> str:
    """Key confusion: HMAC keyed with the client's registered public key."""
    payload = client_assertion(reg.client_id, reg.private_key, audience).split(".")[1]
    head = b64({"alg": "HS256", "kid": reg.private_key.kid})
    mac = hmac.new(reg.private_key.as_pem(private=False), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{b64(mac)}"


ASSERTIONS_REFUSED = {
    "HS256 keyed with the public key": _hs256_with_public_key,
    "alg none": lambda reg, aud: (
        f"{b64({'alg': 'none'})}.{client_assertion(reg.client_id, reg.private_key, aud).split('.')[1]}."
    ),
    "exp an hour ahead": lambda reg, aud: client_assertion(reg.client_id, reg.private_key, aud, lifetime=3600),
    "expired": lambda reg, aud: client_assertion(reg.client_id, reg.private_key, aud, lifetime=-120),
    "another key": lambda reg, aud: client_assertion(reg.client_id, new_client_key(), aud),
    "another audience": lambda reg, aud: client_assertion(
        reg.client_id, reg.private_key, "https://elsewhere.example/token"
    ),
    "iss is not the client": lambda reg, aud: client_assertion(reg.client_id, reg.private_key, aud, iss="cl_other"),
}


async def test_private_key_jwt_refuses_forged_long_lived_or_misaddressed_assertions(operator, live_server):
    token_url = live_server.url + "/oauth/token"
    for n, (case, make) in enumerate(ASSERTIONS_REFUSED.items()):
        reg = await operator(f"walk-{n}", auth_method=PRIVATE_KEY_JWT)
        response = request_token(live_server.url, reg.client_id, method=PRIVATE_KEY_JWT, assertion=make(reg, token_url))
        assert response.status_code == 401, (case, response.text)
        assert response.json()["error"] == "invalid_client", case
        assert "access_token" not in response.json()


async def test_wrong_or_unknown_credentials_are_invalid_client_401(operator, live_server):
    basic = await operator("seoul-walk", auth_method=CLIENT_SECRET_BASIC)
    post = await operator("busan-walk", auth_method=CLIENT_SECRET_POST)

    attempts = [
        request_token(live_server.url, basic.client_id, "cs_wrong"),
        request_token(live_server.url, post.client_id, "cs_wrong", method=CLIENT_SECRET_POST),
        request_token(live_server.url, "cl_unknown", "cs_wrong"),
        request_token(live_server.url, "cl_unknown", "cs_wrong", method=CLIENT_SECRET_POST),
        # A client authenticates only with the method it registered.
        request_token(live_server.url, basic.client_id, basic.client_secret, method=CLIENT_SECRET_POST),
        httpx.post(live_server.url + "/oauth/token", data={"grant_type": "client_credentials"}),
    ]
    for response in attempts:
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
        assert "access_token" not in response.json()
    assert attempts[0].headers["www-authenticate"].startswith("Basic ")


async def test_a_client_gets_the_scopes_it_asks_for_and_never_more(operator, live_server):
    reg = await operator()

    subset = request_token(live_server.url, reg.client_id, reg.client_secret, scope="members:read")
    more = request_token(live_server.url, reg.client_id, reg.client_secret, scope="members:read exchange:write")
    unknown = request_token(live_server.url, reg.client_id, reg.client_secret, scope="everything")

    assert subset.status_code == 200
    assert subset.json()["scope"] == "members:read"
    assert _viewer(live_server, subset.json()["access_token"])["scopes"] == ["members:read"]
    for refused in (more, unknown):
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_scope"


async def test_other_grant_types_are_unsupported(operator, live_server):
    reg = await operator()

    for grant in ("password", "authorization_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"):
        response = httpx.post(
            live_server.url + "/oauth/token", data={"grant_type": grant}, auth=(reg.client_id, reg.client_secret)
        )
        assert response.status_code == 400
        assert response.json()["error"] == "unsupported_grant_type"


async def test_a_malformed_token_request_is_invalid_request(operator, live_server):
    reg = await operator()
    url = live_server.url + "/oauth/token"

    as_json = httpx.post(url, json={"grant_type": "client_credentials"}, auth=(reg.client_id, reg.client_secret))
    repeated = httpx.post(
        url,
        content="grant_type=client_credentials&scope=members:read&scope=activity:write",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(reg.client_id, reg.client_secret),
    )

    for response in (as_json, repeated):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


async def test_a_disabled_client_gets_no_token_and_its_tokens_stop_working(db, operator, live_server):
    reg = await operator()
    token = request_token(live_server.url, reg.client_id, reg.client_secret).json()["access_token"]
    assert _viewer(live_server, token)["clientId"] == reg.client_id

    async with db.transaction() as session:
        await disable_client(session=session, client_id=reg.client_id, partner_id=None)

    refused = request_token(live_server.url, reg.client_id, reg.client_secret)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert "disabled" in refused.json()["error_description"]
    at_graphql = post_graphql(live_server.url, token, VIEWER)
    assert at_graphql.status_code == 401
    assert 'error="invalid_token"' in at_graphql.headers["www-authenticate"]


async def test_five_failed_authentications_in_a_minute_slow_the_client_down(operator, live_server):
    reg = await operator()

    failures = [request_token(live_server.url, reg.client_id, "cs_guess").status_code for _ in range(5)]
    braked = request_token(live_server.url, reg.client_id, reg.client_secret)  # even the right secret waits

    assert failures == [401] * 5
    assert braked.status_code == 429
    assert 1 <= int(braked.headers["retry-after"]) <= 60
    assert braked.json()["error"] == "slow_down"
    other = await operator("busan-walk")
    assert request_token(live_server.url, other.client_id, other.client_secret).status_code == 200


async def test_the_server_publishes_rfc8414_metadata(live_server):
    issuer = live_server.settings.issuer

    metadata = httpx.get(live_server.url + "/.well-known/oauth-authorization-server").json()

    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == issuer + "/oauth/token"
    assert metadata["jwks_uri"] == issuer + "/.well-known/jwks.json"
    assert metadata["introspection_endpoint"] == issuer + "/oauth/introspect"
    assert metadata["revocation_endpoint"] == issuer + "/oauth/revoke"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    }
    assert "none" not in metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert not any(a.startswith("HS") for a in metadata["token_endpoint_auth_signing_alg_values_supported"])
    assert "members:read" in metadata["scopes_supported"]


async def test_token_lifetime_follows_the_setting(operator, live_server):
    reg = await operator()
    before = int(time.time())

    claims = claims_of(request_token(live_server.url, reg.client_id, reg.client_secret).json()["access_token"])

    assert before <= claims["iat"] <= before + 5
    assert claims["exp"] - claims["iat"] == live_server.settings.access_token_ttl


async def test_production_refuses_token_requests_when_the_issuer_is_plain_http(operator, settings):
    """OAuth needs TLS: in production the public URL (GATEWAY_ISSUER) must be https
    (TLS may end at a proxy in front of the gateway; loopback is exempt)."""
    import dataclasses
    import socket

    from tests.conftest import _start_on

    reg = await operator()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    served = dataclasses.replace(
        settings, env="production", issuer="http://gateway.example", audience="http://gateway.example/graphql"
    )
    server = _start_on(served, port)
    try:
        response = request_token(server.url, reg.client_id, reg.client_secret)
    finally:
        server.stop()

    assert response.status_code == 400
    assert response.json()["error"] == "insecure_transport"
