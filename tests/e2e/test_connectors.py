"""Connectors over real HTTP: an administrator configures one, the operator syncs it, the
connector pulls from the operator's own (simulated) API; its health moves with the API's."""

from __future__ import annotations

import datetime as dt
import json
import time
from zoneinfo import ZoneInfo

import pytest

from connectors.webhooks import DeliveryWorker
from gateway import webhooks
from tests.support.auth import GatewayClient, register_partner
from tests.support.simulators import operator_api, webhook_receiver  # noqa: F401  (fixtures)

SEOUL = ZoneInfo("Asia/Seoul")

CONFIGURE = """
mutation($input: ConfigureConnectorInput!) {
  configureConnector(input: $input) { connector { kind status } errors { code message field } }
}"""
SYNC = """
mutation($p: String!, $j: ConnectorJob!) {
  syncConnector(input: {partnerCode: $p, job: $j}) { run { id status } errors { code message } }
}"""
CONNECTORS = "query { connectors { kind status lastSyncAt lastError runs(first: 3) { id status records error } } }"
BALANCE = "query($id: String!) { member(externalId: $id) { balance { available } } }"
RECORD = """
mutation($input: RecordActivitiesInput!) { recordActivities(input: $input) { results { status } errors { code } } }"""


def walk_day() -> dt.date:
    day = dt.datetime.now(SEOUL).date() - dt.timedelta(days=2)
    return day if day.day != 11 else day - dt.timedelta(days=1)


@pytest.fixture
async def partners(db):
    admin = await register_partner(db, code="program-office", kind="ADMIN", scopes=["admin"])
    seoul = await register_partner(
        db,
        code="seoul-walking",
        kind="OPERATOR",
        scopes=["connectors:write", "members:read", "webhooks:manage"],
        unit_code="SWM",
        won_per_point="1",
    )
    busan = await register_partner(
        db,
        code="busan-steps",
        kind="OPERATOR",
        scopes=["activity:write", "members:read"],
        unit_code="BSP",
        won_per_point="1",
    )
    return admin, seoul, busan


def configure(admin: GatewayClient, api, **extra) -> None:
    config = {
        "base_url": api.url,
        "auth": "bearer",
        "timeout_seconds": 2,
        "retry": {"attempts": 2, "initial_seconds": 0.01, "max_seconds": 0.02, "jitter_seconds": 0},
        "activity": {
            "path": "/activity",
            "fields": {
                "member_external_id": "userId",
                "date": "day",
                "steps": "stepCount",
                "distance_meters": "meters",
            },
            "has_more": "has_more",
            "page_size": 2,
        },
        **extra,
    }
    payload = admin.data(
        CONFIGURE,
        input={
            "partnerCode": "seoul-walking",
            "kind": "http-json",
            "jobs": ["PULL_ACTIVITY"],
            "config": json.dumps(config),
            "credentials": json.dumps({"token": "sim-token"}),
        },
    )["configureConnector"]
    assert payload["errors"] == [], payload


def sync(gw: GatewayClient) -> dict:
    return gw.data(SYNC, p="seoul-walking", j="PULL_ACTIVITY")["syncConnector"]


def wait_for_run(gw: GatewayClient, run_id: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connector = gw.data(CONNECTORS)["connectors"][0]
        run = next((r for r in connector["runs"] if r["id"] == run_id), None)
        if run and run["status"] != "RUNNING":
            # The connector and its runs are read by two statements: the read that saw the run
            # end may hold the connector from just before. Read once more, after the end.
            return gw.data(CONNECTORS)["connectors"][0]
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


async def test_an_http_json_pull_over_http_credits_walking_once(live_server, partners, operator_api):
    admin, seoul, _ = partners
    admin_gw, gw = GatewayClient.of(live_server.url, admin), GatewayClient.of(live_server.url, seoul)
    day = walk_day().isoformat()
    operator_api.add_activity("kim", day, 8000, 6000)
    operator_api.add_activity("lee", day, 11000, 8000)
    operator_api.add_activity("park", day, 3000, 2000)
    configure(admin_gw, operator_api)

    first = sync(gw)
    assert first["errors"] == [] and first["run"]["status"] == "RUNNING"
    connector = wait_for_run(gw, first["run"]["id"])
    assert connector["status"] == "HEALTHY" and connector["runs"][0]["records"] == "3" and connector["lastSyncAt"]
    balances = [gw.data(BALANCE, id=m)["member"]["balance"]["available"] for m in ("kim", "lee", "park")]
    assert all(int(b) > 0 for b in balances)

    second = sync(gw)
    connector = wait_for_run(gw, second["run"]["id"])
    assert connector["runs"][0]["records"] == "0"
    assert [gw.data(BALANCE, id=m)["member"]["balance"]["available"] for m in ("kim", "lee", "park")] == balances


async def test_failing_then_hanging_then_recovering_api_moves_the_connector_while_requests_are_served(
    live_server, db, settings, partners, operator_api, webhook_receiver
):
    admin, seoul, busan = partners
    admin_gw, gw = GatewayClient.of(live_server.url, admin), GatewayClient.of(live_server.url, seoul)
    other = GatewayClient.of(live_server.url, busan)
    operator_api.add_activity("kim", walk_day().isoformat(), 8000, 6000)
    configure(admin_gw, operator_api, timeout_seconds=2, breaker={"failure_threshold": 2, "cooldown_seconds": 1})
    hook = gw.data(
        'mutation($u: String!) { createWebhookEndpoint(input: {url: $u, eventTypes: ["connector.status_changed"]}) { secret errors { code } } }',
        u=webhook_receiver.url + "/connector-health",
    )["createWebhookEndpoint"]
    assert hook["errors"] == []

    operator_api.fail_next(100, status=502)
    connector = wait_for_run(gw, sync(gw)["run"]["id"])
    assert connector["status"] == "DEGRADED" and "HTTP 502" in connector["lastError"]

    operator_api.healthy()
    operator_api.hang_next(100, seconds=10)
    assert other.token and gw.token  # tokens first: the timings below are of the requests alone
    hanging = sync(gw)["run"]
    # While the partner's API hangs (the run waits 2 s for each of its two calls), the
    # gateway answers everyone at once.
    for _ in range(3):
        started = time.monotonic()
        assert gw.data(CONNECTORS)["connectors"][0]["runs"][0]["status"] == "RUNNING"
        recorded = other.data(
            RECORD,
            input={
                "activities": [
                    {
                        "memberExternalId": "busan-1",
                        "date": walk_day().isoformat(),
                        "steps": 5000,
                        "distanceMeters": 4000,
                    }
                ]
            },
        )["recordActivities"]
        assert recorded["errors"] == [] and time.monotonic() - started < 1.5
        time.sleep(0.1)
    connector = wait_for_run(gw, hanging["id"])
    assert connector["status"] == "DOWN" and "no answer within 2 s" in connector["runs"][0]["error"]

    refused = sync(gw)
    assert refused["run"] is None and refused["errors"][0]["code"] == "UPSTREAM_UNAVAILABLE"

    operator_api.healthy()
    time.sleep(1.1)  # the breaker's cooldown
    connector = wait_for_run(gw, sync(gw)["run"]["id"])
    assert (
        connector["status"] == "HEALTHY" and connector["lastError"] is None and connector["runs"][0]["records"] == "1"
    )

    # The partner heard of each change through its webhook.
    await webhooks.dispatch(db=db)
    worker = DeliveryWorker(db=db, settings=settings)
    try:
        await worker.drain()
    finally:
        await worker.aclose()
    changes = sorted(
        (json.loads(r.body)["data"] for r in webhook_receiver.received), key=lambda c: c["at"]
    )  # sent concurrently
    assert [(c["previousStatus"], c["status"]) for c in changes] == [
        ("HEALTHY", "DEGRADED"),
        ("DEGRADED", "DOWN"),
        ("DOWN", "HEALTHY"),
    ]
    assert all(c["partner"] == "seoul-walking" and c["kind"] == "http-json" for c in changes)
