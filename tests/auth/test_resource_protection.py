"""/graphql over real HTTP: a valid bearer token opens it, anything else is 401 with
`WWW-Authenticate: Bearer error="invalid_token"` and a JSON body."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from auth.keys import jws_registry
from tests.auth.conftest import VIEWER, b64, claims_of, forge, header_of
from tests.support.auth import get_token, post_graphql


def assert_refused(response: httpx.Response, reason: str | None = None) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    body = response.json()
    assert body["error"] == "invalid_token"
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in body
    if reason:
        assert reason in body["error_description"], body["error_description"]


async def _token(operator, live_server) -> str:
    reg = await operator()
    return get_token(live_server.url, reg.client_id, reg.client_secret)


async def test_a_valid_token_opens_graphql(operator, live_server):
    token = await _token(operator, live_server)

    response = post_graphql(live_server.url, token, VIEWER)

    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["partner"]["code"] == "seoul-walk"


async def test_no_token_or_another_scheme_is_refused(live_server):
    assert_refused(post_graphql(live_server.url, None, VIEWER), "no bearer token")
    for header in ("Basic Y2xpZW50OnNlY3JldA==", "Bearer", "Token abc", "Bearer a b"):
        response = httpx.post(live_server.url + "/graphql", json={"query": VIEWER}, headers={"Authorization": header})
        assert_refused(response)


async def test_a_tampered_token_is_refused(operator, live_server):
    token = await _token(operator, live_server)
    head, payload, signature = token.split(".")
    more_scopes = b64({**claims_of(token), "scope": "admin members:read"})
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")

    assert_refused(post_graphql(live_server.url, f"{head}.{more_scopes}.{signature}", VIEWER), "signature")
    assert_refused(post_graphql(live_server.url, f"{head}.{payload}.{flipped}", VIEWER), "signature")
    assert_refused(post_graphql(live_server.url, "not-a-jwt", VIEWER))


async def test_alg_none_is_refused(operator, live_server):
    token = await _token(operator, live_server)
    header = {**header_of(token), "alg": "none"}

    unsigned = f"{b64(header)}.{token.split('.')[1]}."

    assert_refused(post_graphql(live_server.url, unsigned, VIEWER), "'none' is not accepted")


async def test_hs256_signed_with_the_public_key_is_refused(operator, live_server):
    """The classic key-confusion attack: HMAC keyed with the published public key."""
    token = await _token(operator, live_server)
    kid = header_of(token)["kid"]
    jwks = httpx.get(live_server.url + "/.well-known/jwks.json").json()
    public = next(k for k in jwks["keys"] if k["kid"] == kid)
    pem = ECKey.import_key(public).as_pem(private=False)
    for secret in (pem, httpx.get(live_server.url + "/.well-known/jwks.json").content):
        # By hand: JOSE libraries (rightly) refuse to make an HMAC key of a public key.
        signing_input = f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{token.split('.')[1]}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        forged = f"{signing_input}.{b64(mac)}"
        assert_refused(post_graphql(live_server.url, forged, VIEWER), "'HS256' is not accepted")


async def test_the_gateways_own_key_with_wrong_claims_is_refused(operator, live_server, server_keys):
    token = await _token(operator, live_server)
    real = claims_of(token)
    now = int(time.time())

    # Control: the forging helper makes tokens the gateway accepts when the claims are right.
    control = forge(server_keys, live_server, claims={**real, "jti": "control"})
    assert post_graphql(live_server.url, control, VIEWER).status_code == 200

    cases = {
        "wrong audience": ({"aud": "https://other-gateway.example/graphql"}, (), "'aud'"),
        "wrong issuer": ({"iss": "https://impostor.example"}, (), "'iss'"),
        "expired": ({"iat": now - 1000, "exp": now - 10}, (), "expired"),
        "issued in the future": ({"iat": now + 600, "exp": now + 900}, (), "'iat'"),
        "no jti": ({}, ("jti",), "lacks claims"),
        "no exp": ({}, ("exp",), "lacks claims"),
        "sub is not the client": ({"sub": "cl_someone_else"}, (), "sub"),
        "unknown client": ({"sub": "cl_ghost", "client_id": "cl_ghost"}, (), "does not exist"),
    }
    for case, (changes, drop, reason) in cases.items():
        forged = forge(server_keys, live_server, claims={**real, "jti": case, **changes}, drop=drop)
        response = post_graphql(live_server.url, forged, VIEWER)
        assert response.status_code == 401, case
        assert_refused(response, reason)


async def test_a_token_without_the_at_jwt_type_is_refused(operator, live_server, server_keys):
    token = await _token(operator, live_server)

    plain_jwt = forge(server_keys, live_server, claims=claims_of(token), header={"typ": "JWT"})

    assert_refused(post_graphql(live_server.url, plain_jwt, VIEWER), "at+jwt")


async def test_an_unknown_kid_is_refused(operator, live_server):
    token = await _token(operator, live_server)
    stranger = ECKey.generate_key("P-256", private=True, auto_kid=True)

    for kid in (stranger.kid, "retired-long-ago", ""):
        forged = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": kid}, claims_of(token), stranger)
        assert_refused(post_graphql(live_server.url, forged, VIEWER), "No published key" if kid else "no kid")
    # The same key under the real kid does not verify either.
    forged = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": header_of(token)["kid"]}, claims_of(token), stranger)
    assert_refused(post_graphql(live_server.url, forged, VIEWER), "signature")


async def test_a_document_key_cannot_sign_access_tokens(operator, live_server, server_keys):
    token = await _token(operator, live_server)
    document_key = server_keys.signing_key("EdDSA")

    forged = jwt.encode(
        {"alg": "EdDSA", "typ": "at+jwt", "kid": document_key.kid},
        claims_of(token),
        document_key,
        registry=jws_registry(["EdDSA"]),
    )

    assert_refused(post_graphql(live_server.url, forged, VIEWER), "'EdDSA' is not accepted")


async def test_a_revoked_token_is_refused(operator, live_server):
    reg = await operator()
    token = get_token(live_server.url, reg.client_id, reg.client_secret)
    assert post_graphql(live_server.url, token, VIEWER).status_code == 200

    revoked = httpx.post(
        live_server.url + "/oauth/revoke", data={"token": token}, auth=(reg.client_id, reg.client_secret)
    )

    assert revoked.status_code == 200
    assert_refused(post_graphql(live_server.url, token, VIEWER), "revoked")
    # A fresh token of the same client still works.
    assert (
        post_graphql(live_server.url, get_token(live_server.url, reg.client_id, reg.client_secret), VIEWER).status_code
        == 200
    )
