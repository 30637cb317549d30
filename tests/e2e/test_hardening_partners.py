"""Hardening against hostile partners and administrators, over real HTTP (issue 17, items 5, 13).

* Connector SSRF: `configureConnector` refuses base URLs that reach the gateway's own host,
  its network or a metadata service, in every spelling; a connector stored with such a
  URL (or whose name resolves there later) never gets a request, let alone its credential;
  a run's error does not tell an open port from a closed one.
* Probing: another operator's agreement answers like an unknown code in
  `submitReconciliationReport`; another sponsor's campaign code answers like an unused one
  until the request would actually take the code.

The test settings allow private addresses (the simulators run on loopback): the guard's
tests turn that off for their server.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
import threading
import time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from gateway import connectors as connector_service
from gateway.addresses import address_refusal
from gateway.models import ConnectorJob, SettlementPeriod
from gateway.models.partners import Partner
from gateway.partners import create_agreement
from tests.support.auth import GatewayClient, register_partner
from tests.support.simulators import operator_api  # noqa: F401  (fixture)

SEOUL = ZoneInfo("Asia/Seoul")

CONFIGURE = """
mutation($input: ConfigureConnectorInput!) {
  configureConnector(input: $input) { connector { kind status } errors { code message field } }
}"""
SYNC = """
mutation($p: String!) {
  syncConnector(input: {partnerCode: $p, job: PULL_ACTIVITY}) { run { id status } errors { code message } }
}"""
CONNECTORS = "query { connectors { kind status lastError runs(first: 5) { id status error } } }"
SUBMIT = """
mutation($input: SubmitReconciliationReportInput!) {
  submitReconciliationReport(input: $input) { run { id } errors { code message field } }
}"""
CREATE_CAMPAIGN = """
mutation($input: CreateCampaignInput!) {
  createCampaign(input: $input) { campaign { code sponsor { code } } errors { code message field } }
}"""

#: Each names the gateway's host, its network or a metadata service in some spelling.
INTERNAL_URLS = [
    "http://127.0.0.1:8080/v1",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]:8080/v1",
    "http://2130706433/v1",
    "http://0x7f000001/v1",
    "http://0177.0.0.1/v1",
    "http://127.1/v1",
    "http://[::ffff:127.0.0.1]/v1",
    "http://[::ffff:a9fe:a9fe]/v1",
    "http://0.0.0.0:5432/",
    "http://10.0.0.8/v1",
    "http://192.168.1.1/v1",
    "http://[fe80::1]/v1",
    "http://224.0.0.1/v1",
    "http://localhost:6379/",
    "http://metadata.google.internal/computeMetadata/v1",
]


def strict(settings):
    """The settings of a production gateway: private addresses refused."""
    return dataclasses.replace(settings, webhook_allow_private=False)


@pytest.fixture
def guarded_server(settings):
    """A served gateway with the address guard on (the `live_server` of strict settings)."""
    from tests.conftest import _start_on

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    issuer = f"http://127.0.0.1:{port}"
    server = _start_on(dataclasses.replace(strict(settings), issuer=issuer, audience=f"{issuer}/graphql"), port)
    yield server
    server.stop()


@pytest.fixture
async def operators(db):
    admin = await register_partner(db, code="program-office", kind="ADMIN", scopes=["admin"])
    seoul = await register_partner(
        db,
        code="seoul-walking",
        kind="OPERATOR",
        scopes=["connectors:write", "members:read"],
        unit_code="SWM",
        won_per_point="1",
    )
    return admin, seoul


def activity_config(base_url: str, **extra) -> dict:
    return {
        "base_url": base_url,
        "auth": "bearer",
        "timeout_seconds": 1,
        "retry": {"attempts": 1},
        "activity": {
            "path": "/activity",
            "fields": {
                "member_external_id": "userId",
                "date": "day",
                "steps": "stepCount",
                "distance_meters": "meters",
            },
        },
        **extra,
    }


def configure(admin: GatewayClient, base_url: str) -> dict:
    return admin.data(
        CONFIGURE,
        input={
            "partnerCode": "seoul-walking",
            "kind": "http-json",
            "jobs": ["PULL_ACTIVITY"],
            "config": json.dumps(activity_config(base_url)),
            "credentials": json.dumps({"token": "sim-token"}),
        },
    )["configureConnector"]


def run_to_end(gw: GatewayClient, timeout: float = 20) -> dict:
    started = gw.data(SYNC, p="seoul-walking")["syncConnector"]
    assert started["errors"] == [], started
    run_id = started["run"]["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = next(r for r in gw.data(CONNECTORS)["connectors"][0]["runs"] if r["id"] == run_id)
        if run["status"] != "RUNNING":
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def loopback_name() -> str:
    """A host name (not "localhost") that resolves to this machine: the machine's own name."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    if not addresses or any(address_refusal(a.split("%")[0]) is None for a in addresses):
        pytest.skip(f"this machine's name {name!r} resolves to a public address")
    return name


async def store_connector(db, settings, base_url: str) -> None:
    """A connector as an earlier gateway stored it, without the guard (or before its name's
    DNS answer changed): what the runner must refuse at connection time."""
    async with db.transaction() as session:
        partner = (await session.execute(sa.select(Partner).where(Partner.code == "seoul-walking"))).scalar_one()
        await connector_service.configure(
            session=session,
            secret_key=settings.secret_key,
            partner=partner,
            kind="http-json",
            jobs=[ConnectorJob.PULL_ACTIVITY],
            config=activity_config(base_url),
            credentials={"token": "sim-token"},
            schedule_seconds=None,
            enabled=True,
        )


# ---------------------------------------------------------------- item 5: connector SSRF


async def test_configure_connector_refuses_every_spelling_of_an_internal_address(guarded_server, operators):
    admin, seoul = operators
    admin_gw, gw = GatewayClient.of(guarded_server.url, admin), GatewayClient.of(guarded_server.url, seoul)
    for url in INTERNAL_URLS + [f"http://{loopback_name()}:8080/v1"]:
        payload = configure(admin_gw, url)
        assert payload["connector"] is None, url
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", ["input", "config"])], (
            url,
            payload,
        )
        assert "public addresses only" in payload["errors"][0]["message"], url
    assert gw.data(CONNECTORS)["connectors"] == []
    # A public address is accepted (an IP literal: no DNS needed).
    assert configure(admin_gw, "https://93.184.216.34/v1")["errors"] == []


async def test_a_connector_stored_with_an_internal_address_never_sends_its_credential(
    guarded_server, db, settings, operators, operator_api
):
    admin, seoul = operators
    gw = GatewayClient.of(guarded_server.url, seoul)
    name = loopback_name()
    for base_url in (operator_api.url, f"http://{name}:{operator_api.port}"):
        await store_connector(db, settings, base_url)
        run = run_to_end(gw)
        assert run["status"] == "FAILED" and "public addresses only" in run["error"], run
        assert "loopback" in run["error"]
    # The partner's system (on loopback) heard nothing: no request, no bearer token.
    assert operator_api.requests == []


class RawPort:
    """A TCP port on loopback: closed, then open and hanging up at once, or open and silent."""

    def __init__(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.hang_up = True
        self.listener: socket.socket | None = None
        self.held: list[socket.socket] = []

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                if self.hang_up:
                    conn.close()
                else:
                    self.held.append(conn)

        threading.Thread(target=serve, daemon=True).start()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
        for conn in self.held:
            conn.close()


async def test_a_runs_error_does_not_tell_an_open_port_from_a_closed_one(live_server, operators):
    admin, seoul = operators
    admin_gw, gw = GatewayClient.of(live_server.url, admin), GatewayClient.of(live_server.url, seoul)
    target = RawPort()
    assert configure(admin_gw, f"http://127.0.0.1:{target.port}")["errors"] == []
    try:
        closed = run_to_end(gw)
        target.open()
        hangs_up = run_to_end(gw)
        target.hang_up = False
        silent = run_to_end(gw)
    finally:
        target.close()
    assert closed["status"] == hangs_up["status"] == silent["status"] == "FAILED"
    assert closed["error"] == hangs_up["error"] == silent["error"], (closed, hangs_up, silent)
    assert "connection failed" in closed["error"]


# ---------------------------------------------------------------- item 13: probing


@pytest.fixture
async def agreement_world(db, live_server):
    scopes = ["settlements:read", "settlements:write"]
    await register_partner(db, code="seoul-walking", kind="OPERATOR", scopes=scopes, unit_code="SWM", won_per_point="1")
    await register_partner(db, code="busan-steps", kind="OPERATOR", scopes=scopes, unit_code="BSP", won_per_point="1")
    jeju = await register_partner(
        db, code="jeju-trails", kind="OPERATOR", scopes=scopes, unit_code="JJT", won_per_point="1"
    )
    async with db.transaction() as s:
        await create_agreement(
            session=s,
            code="seoul-busan",
            operator_a_code="seoul-walking",
            operator_b_code="busan-steps",
            cross_redemption=True,
            point_exchange=True,
            fee_bps=250,
            settlement_period=SettlementPeriod.MONTHLY,
            starts_on=dt.date(2025, 1, 1),
        )
    return GatewayClient.of(live_server.url, jeju)


async def test_another_operators_agreement_answers_exactly_like_an_unknown_code(agreement_world):
    jeju = agreement_world

    def submit(code: str) -> dict:
        return jeju.data(
            SUBMIT,
            input={
                "agreementCode": code,
                "periodStart": "2025-01-01",
                "periodEnd": "2025-01-31",
                "records": [
                    {
                        "reference": "mv_1",
                        "kind": "CROSS_REDEMPTION",
                        "amountWon": "1000",
                        "occurredAt": "2025-01-05T12:00:00+09:00",
                    }
                ],
            },
        )["submitReconciliationReport"]

    others, unknown = submit("seoul-busan"), submit("no-such-agreem")
    assert others["run"] is None and others["errors"][0]["code"] == "NOT_FOUND"
    assert others == unknown


@pytest.fixture
async def sponsors(db, live_server):
    scopes = ["campaigns:write", "donations:read"]
    first = await register_partner(db, code="yakult", kind="SPONSOR", scopes=scopes)
    second = await register_partner(db, code="other-sponsor", kind="SPONSOR", scopes=scopes)
    await register_partner(db, code="sharing-foundation", kind="BENEFICIARY", scopes=["donations:read"])
    return GatewayClient.of(live_server.url, first), GatewayClient.of(live_server.url, second)


def campaign_input(code: str, **fields) -> dict:
    today = dt.datetime.now(SEOUL).date()
    values = {
        "code": code,
        "name": "Warm steps",
        "beneficiaryCode": "sharing-foundation",
        "startsOn": today.isoformat(),
        "endsOn": (today + dt.timedelta(days=30)).isoformat(),
        "wonPerKm": "100",
        "wonPerAchiever": "0",
        "matchRatio": "1",
        "budgetWon": "1000000",
    }
    values.update(fields)
    return values


async def test_create_campaign_does_not_tell_another_sponsors_code_from_an_unused_one(sponsors):
    yakult, rival = sponsors
    created = yakult.data(CREATE_CAMPAIGN, input=campaign_input("warm-steps-2026"))["createCampaign"]
    assert created["errors"] == [] and created["campaign"]["sponsor"]["code"] == "yakult"

    def create(code: str, **fields) -> dict:
        return rival.data(CREATE_CAMPAIGN, input=campaign_input(code, **fields))["createCampaign"]

    # Any request that could not take the code answers the same for a taken and a free code.
    for fields in ({"beneficiaryCode": "no-such-beneficiary"}, {"budgetWon": "0"}, {"name": " "}):
        taken, free = create("warm-steps-2026", **fields), create("never-used-2026", **fields)
        assert taken["campaign"] is None and taken["errors"], fields
        assert taken == free, fields
    # Taking it is refused alike whoever holds it (the rival's own code included), naming nobody.
    assert create("rival-steps")["errors"] == []
    others, own = create("warm-steps-2026"), create("rival-steps")
    assert (
        others["errors"]
        == own["errors"]
        == [{"code": "INVALID_INPUT", "message": others["errors"][0]["message"], "field": ["input", "code"]}]
    )
    assert "yakult" not in json.dumps(others)
    assert yakult.data("query { campaigns { edges { node { code } } } }")["campaigns"]["edges"] == [
        {"node": {"code": "warm-steps-2026"}}
    ]


def test_one_setting_governs_webhooks_and_connectors_under_either_name():
    from gateway.settings import Settings

    def allowed(**env: str) -> bool:
        return Settings.from_env({"GATEWAY_DATABASE_URL": "sqlite+aiosqlite:///:memory:", **env}).webhook_allow_private

    assert not allowed()
    assert allowed(GATEWAY_WEBHOOK_ALLOW_PRIVATE="1") and allowed(GATEWAY_ALLOW_PRIVATE_ADDRESSES="1")
    assert not allowed(GATEWAY_ALLOW_PRIVATE_ADDRESSES="0", GATEWAY_WEBHOOK_ALLOW_PRIVATE="1")  # the new name wins
