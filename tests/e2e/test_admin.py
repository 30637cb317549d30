"""The program office over real HTTP: partners, clients, agreements; and the bootstrap command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.auth import GatewayClient, get_token, register_partner

CREATE_PARTNER = """mutation($i: CreatePartnerInput!) { createPartner(input: $i) {
  partner { id code name kind unit { code wonPerPoint } operator { code } } errors { code field message } } }"""
CREATE_CLIENT = """mutation($i: CreateClientInput!) { createClient(input: $i) {
  client { clientId scopes authMethod enabled partner { code } } clientSecret errors { code field message } } }"""
CREATE_AGREEMENT = """mutation($i: CreateAgreementInput!) { createAgreement(input: $i) {
  agreement { code operatorA { code } operatorB { code } crossRedemption pointExchange feeBps settlementPeriod startsOn endsOn status }
  errors { code field message } } }"""


async def _admin(live_server, db) -> GatewayClient:
    reg = await register_partner(db, code="program-office", kind="ADMIN", scopes=["admin"])
    return GatewayClient(live_server.url, reg.client_id, reg.client_secret)


def _operator(admin: GatewayClient, code: str, unit: str, rate: str) -> dict:
    return admin.data(
        CREATE_PARTNER,
        i={"code": code, "name": code.title(), "kind": "OPERATOR", "unitCode": unit, "wonPerPoint": rate},
    )["createPartner"]


async def test_the_program_office_registers_a_cooperating_world(live_server, db):
    admin = await _admin(live_server, db)
    seoul = _operator(admin, "seoul-walking", "SWM", "1")
    assert seoul["errors"] == [] and seoul["partner"]["unit"] == {"code": "SWM", "wonPerPoint": "1"}
    _operator(admin, "gyeonggi-steps", "GHS", "0.5")
    shop = admin.data(
        CREATE_PARTNER,
        i={"code": "mangwon-bakery", "name": "Mangwon Bakery", "kind": "MERCHANT", "operatorCode": "seoul-walking"},
    )
    assert shop["createPartner"]["partner"]["operator"] == {"code": "seoul-walking"}

    made = admin.data(
        CREATE_CLIENT,
        i={
            "partnerCode": "mangwon-bakery",
            "scopes": ["redemptions:write", "redemptions:read"],
            "authMethod": "CLIENT_SECRET_BASIC",
        },
    )["createClient"]
    assert made["errors"] == [] and made["clientSecret"].startswith("cs_")
    assert made["client"]["partner"] == {"code": "mangwon-bakery"} and made["client"]["enabled"] is True

    # The new client works at once, and sees itself.
    merchant = GatewayClient(live_server.url, made["client"]["clientId"], made["clientSecret"])
    viewer = merchant.data("{ viewer { clientId scopes partner { code kind } } }")["viewer"]
    assert viewer == {
        "clientId": made["client"]["clientId"],
        "scopes": ["redemptions:read", "redemptions:write"],
        "partner": {"code": "mangwon-bakery", "kind": "MERCHANT"},
    }

    agreement = admin.data(
        CREATE_AGREEMENT,
        i={
            "code": "seoul-gyeonggi",
            "operatorACode": "seoul-walking",
            "operatorBCode": "gyeonggi-steps",
            "crossRedemption": True,
            "pointExchange": True,
            "feeBps": 150,
            "settlementPeriod": "MONTHLY",
            "startsOn": "2026-01-01",
        },
    )["createAgreement"]
    assert agreement["errors"] == []
    assert (
        agreement["agreement"]["operatorA"] == {"code": "seoul-walking"}
        and agreement["agreement"]["status"] == "ACTIVE"
    )

    listed = admin.data("{ partners(kind: OPERATOR) { edges { node { code } } } }")["partners"]["edges"]
    assert [e["node"]["code"] for e in listed] == ["seoul-walking", "gyeonggi-steps"]


async def test_bad_registrations_are_refused_with_the_field_at_fault_and_change_nothing(live_server, db):
    admin = await _admin(live_server, db)
    _operator(admin, "seoul-walking", "SWM", "1")
    cases = [
        ({"code": "Bad Code", "name": "x", "kind": "SPONSOR"}, ["input", "code"]),
        ({"code": "seoul-walking", "name": "again", "kind": "SPONSOR"}, ["input", "code"]),
        ({"code": "op-2", "name": "No unit", "kind": "OPERATOR"}, ["input", "unitCode"]),
        (
            {"code": "op-3", "name": "Same unit", "kind": "OPERATOR", "unitCode": "SWM", "wonPerPoint": "1"},
            ["input", "unitCode"],
        ),
        (
            {"code": "op-5", "name": "Won", "kind": "OPERATOR", "unitCode": "KRW", "wonPerPoint": "1"},
            ["input", "unitCode"],
        ),
        (
            {"code": "op-4", "name": "Free points", "kind": "OPERATOR", "unitCode": "FRE", "wonPerPoint": "0"},
            ["input", "wonPerPoint"],
        ),
        ({"code": "shop-1", "name": "Orphan", "kind": "MERCHANT"}, ["input", "operatorCode"]),
        ({"code": "shop-2", "name": "Lost", "kind": "MERCHANT", "operatorCode": "nowhere"}, ["input", "operatorCode"]),
    ]
    for given, field in cases:
        result = admin.data(CREATE_PARTNER, i=given)["createPartner"]
        assert result["partner"] is None and result["errors"][0]["field"] == field, given
    codes = [e["node"]["code"] for e in admin.data("{ partners { edges { node { code } } } }")["partners"]["edges"]]
    assert codes == ["program-office", "seoul-walking"]

    scopes = admin.data(
        CREATE_CLIENT,
        i={"partnerCode": "seoul-walking", "scopes": ["redemptions:write"], "authMethod": "CLIENT_SECRET_BASIC"},
    )["createClient"]
    assert scopes["client"] is None and scopes["errors"][0]["code"] == "INVALID_INPUT"
    jwks = admin.data(
        CREATE_CLIENT,
        i={
            "partnerCode": "seoul-walking",
            "scopes": ["members:read"],
            "authMethod": "PRIVATE_KEY_JWT",
            "jwks": '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}',
        },
    )["createClient"]
    assert jwks["client"] is None and jwks["errors"][0]["field"] == ["input", "jwks"]


async def test_a_partner_rotates_and_disables_only_its_own_clients(live_server, db):
    seoul = await register_partner(
        db,
        code="seoul-walking",
        kind="OPERATOR",
        scopes=["members:read", "clients:manage"],
        unit_code="SWM",
        won_per_point="1",
    )
    other = await register_partner(
        db,
        code="gyeonggi-steps",
        kind="OPERATOR",
        scopes=["members:read", "clients:manage"],
        unit_code="GHS",
        won_per_point="1",
    )
    gw = GatewayClient(live_server.url, seoul.client_id, seoul.client_secret)
    rotate = "mutation($i: ClientIdInput!) { rotateClientSecret(input: $i) { client { clientId } clientSecret errors { code } } }"
    disable = (
        "mutation($i: ClientIdInput!) { disableClient(input: $i) { client { clientId enabled } errors { code } } }"
    )

    foreign = gw.data(rotate, i={"clientId": other.client_id})["rotateClientSecret"]
    assert foreign == {"client": None, "clientSecret": None, "errors": [{"code": "NOT_FOUND"}]}
    assert gw.data(disable, i={"clientId": other.client_id})["disableClient"]["errors"] == [{"code": "NOT_FOUND"}]
    get_token(live_server.url, other.client_id, other.client_secret)  # still works

    rotated = gw.data(rotate, i={"clientId": seoul.client_id})["rotateClientSecret"]
    new_secret = rotated["clientSecret"]
    assert new_secret and new_secret != seoul.client_secret
    import httpx

    old = httpx.post(
        f"{live_server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(seoul.client_id, seoul.client_secret),
    )
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"
    fresh = GatewayClient(live_server.url, seoul.client_id, new_secret)
    assert fresh.data(disable, i={"clientId": seoul.client_id})["disableClient"]["client"]["enabled"] is False
    refused = httpx.post(
        f"{live_server.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(seoul.client_id, new_secret)
    )
    assert refused.status_code == 401


async def test_admin_mutations_are_forbidden_to_other_partners(live_server, db):
    seoul = await register_partner(
        db,
        code="seoul-walking",
        kind="OPERATOR",
        scopes=["members:read", "settlements:read"],
        unit_code="SWM",
        won_per_point="1",
    )
    gw = GatewayClient(live_server.url, seoul.client_id, seoul.client_secret)
    body = gw.gql(CREATE_PARTNER, i={"code": "sneaky", "name": "Sneaky", "kind": "ADMIN"})
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert gw.gql("{ partners { edges { node { code } } } }")["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_an_operator_sees_only_its_own_agreements(live_server, db):
    admin = await _admin(live_server, db)
    for code, unit in (("op-a", "AAA"), ("op-b", "BBB"), ("op-c", "CCC")):
        _operator(admin, code, unit, "1")
    for code, a, b in (("ab", "op-a", "op-b"), ("bc", "op-b", "op-c")):
        admin.data(
            CREATE_AGREEMENT,
            i={
                "code": code,
                "operatorACode": a,
                "operatorBCode": b,
                "crossRedemption": True,
                "pointExchange": False,
                "feeBps": 0,
                "settlementPeriod": "DAILY",
                "startsOn": "2026-01-01",
            },
        )
    reg = await register_partner(
        db, code="ignored", kind="OPERATOR", scopes=["settlements:read"], unit_code="DDD", won_per_point="1"
    )
    # A client of op-c itself:
    from tests.support.auth import add_client

    op_c = await add_client(db, "op-c", scopes=["settlements:read"])
    gw = GatewayClient(live_server.url, op_c.client_id, op_c.client_secret)
    assert [a["code"] for a in gw.data("{ agreements { code } }")["agreements"]] == ["bc"]
    lonely = GatewayClient(live_server.url, reg.client_id, reg.client_secret)
    assert lonely.data("{ agreements { code } }")["agreements"] == []
    assert [a["code"] for a in admin.data("{ agreements { code } }")["agreements"]] == ["ab", "bc"]


def test_create_admin_client_prints_only_json_credentials_that_work(live_server):
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": live_server.settings.database_url,
        "GATEWAY_SECRET_KEY": live_server.settings.secret_key,
        "GATEWAY_ENV": live_server.settings.env,
    }
    run = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "create-admin-client", "--json", "--no-migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    creds = json.loads(run.stdout)
    assert set(creds) == {"client_id", "client_secret"}
    gw = GatewayClient(live_server.url, creds["client_id"], creds["client_secret"])
    assert gw.data("{ viewer { partner { kind } } }")["viewer"]["partner"]["kind"] == "ADMIN"
    again = json.loads(
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", "create-admin-client", "--json", "--no-migrate"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        ).stdout
    )
    assert again["client_id"] != creds["client_id"]
    admins = gw.data("{ partners(kind: ADMIN) { edges { node { code } } } }")["partners"]["edges"]
    assert len(admins) == 1
