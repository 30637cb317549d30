"""GraphQL: connectors (query, syncConnector, configureConnector): scopes and tenancy."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.models import PartnerKind
from tests.connectors.helpers import FAST_RETRY, configure, walk_day
from tests.gateway import factories
from tests.support.schema import execute, principal
from tests.support.simulators import operator_api  # noqa: F401  (fixture)

CONNECTORS = """
query { connectors { partner { code } kind status lastSyncAt lastError jobs
  runs(first: 5) { id job status records error startedAt finishedAt trigger } } }"""

SYNC = """
mutation($p: String!, $j: ConnectorJob!) {
  syncConnector(input: {partnerCode: $p, job: $j}) { run { id status job trigger } errors { code message field } }
}"""

CONFIGURE = """
mutation($input: ConfigureConnectorInput!) {
  configureConnector(input: $input) { connector { kind status jobs scheduleSeconds partner { code } } errors { code message field } }
}"""


@pytest.fixture
async def world(db, operator_api):
    async with db.transaction() as session:
        admin = await factories.partner(session, PartnerKind.ADMIN)
        op = await factories.operator(session)
        other = await factories.operator(session)
        merchant = await factories.partner(session, PartnerKind.MERCHANT, operator_id=op.id)
    operator_api.add_activity("kim", walk_day().isoformat(), 8000, 6000)
    config = {
        "base_url": operator_api.url,
        "auth": "bearer",
        "retry": FAST_RETRY,
        "activity": {
            "path": "/activity",
            "fields": {
                "member_external_id": "userId",
                "date": "day",
                "steps": "stepCount",
                "distance_meters": "meters",
            },
            "has_more": "has_more",
        },
    }
    await configure(db, op, "http-json", ["PULL_ACTIVITY"], config, credentials={"token": "sim-token"})
    return dict(
        admin=principal(admin.id, admin.code, "ADMIN"),
        op=principal(op.id, op.code, "OPERATOR", "connectors:write"),
        op_without_scope=principal(op.id, op.code, "OPERATOR", "members:read"),
        other=principal(other.id, other.code, "OPERATOR", "connectors:write"),
        merchant=principal(merchant.id, merchant.code, "MERCHANT", "webhooks:manage"),
        op_code=op.code,
        other_code=other.code,
        config=config,
    )


def _code(result) -> str:
    return result.errors[0].extensions["code"]


async def test_partners_see_their_own_connectors_and_admin_sees_all(db, settings, world):
    mine = await execute(db, settings, world["op"], CONNECTORS)
    assert not mine.errors and [c["partner"]["code"] for c in mine.data["connectors"]] == [world["op_code"]]
    connector = mine.data["connectors"][0]
    assert connector["kind"] == "http-json" and connector["status"] == "HEALTHY" and connector["runs"] == []
    assert (await execute(db, settings, world["other"], CONNECTORS)).data["connectors"] == []
    assert len((await execute(db, settings, world["admin"], CONNECTORS)).data["connectors"]) == 1
    assert _code(await execute(db, settings, world["op_without_scope"], CONNECTORS)) == "FORBIDDEN"
    assert _code(await execute(db, settings, world["merchant"], CONNECTORS)) == "FORBIDDEN"


async def _wait_for_run(db, settings, who, status="COMPLETED") -> dict:
    for _ in range(200):
        result = await execute(db, settings, who, CONNECTORS)
        runs = result.data["connectors"][0]["runs"]
        if runs and runs[0]["status"] == status:
            # Connector and runs come from two statements: read again, after the run's end.
            return (await execute(db, settings, who, CONNECTORS)).data["connectors"][0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {status} run: {result.data}")


async def test_sync_connector_starts_a_background_run_that_the_connectors_query_shows(db, settings, world):
    result = await execute(db, settings, world["op"], SYNC, {"p": world["op_code"], "j": "PULL_ACTIVITY"})
    payload = result.data["syncConnector"]
    assert (
        payload["errors"] == [] and payload["run"]["job"] == "PULL_ACTIVITY" and payload["run"]["trigger"] == "manual"
    )
    connector = await _wait_for_run(db, settings, world["op"])
    run = connector["runs"][0]
    assert run["id"] == payload["run"]["id"] and run["records"] == "1" and run["finishedAt"] and run["error"] is None
    assert connector["lastSyncAt"] is not None
    # ADMIN may sync any partner's connector.
    result = await execute(db, settings, world["admin"], SYNC, {"p": world["op_code"], "j": "PULL_ACTIVITY"})
    assert result.data["syncConnector"]["errors"] == []
    connector = await _wait_for_run(db, settings, world["op"])
    limited = await execute(db, settings, world["op"], "query { connectors { runs(first: 1) { id } } }")
    assert len(limited.data["connectors"][0]["runs"]) == 1


async def test_a_partner_syncs_only_its_own_connector(db, settings, world):
    result = await execute(db, settings, world["other"], SYNC, {"p": world["op_code"], "j": "PULL_ACTIVITY"})
    assert _code(result) == "FORBIDDEN" and result.data is None
    assert world["op_code"] not in result.errors[0].message
    result = await execute(db, settings, world["other"], SYNC, {"p": world["other_code"], "j": "PULL_ACTIVITY"})
    assert result.data["syncConnector"]["errors"][0]["code"] == "NOT_FOUND"
    result = await execute(db, settings, world["merchant"], SYNC, {"p": world["op_code"], "j": "PULL_ACTIVITY"})
    assert _code(result) == "FORBIDDEN"


async def test_a_connector_that_is_down_answers_upstream_unavailable(db, settings, world, operator_api):
    operator_api.fail_next(100)
    config = dict(world["config"], breaker={"failure_threshold": 1, "cooldown_seconds": 300})
    variables = {
        "input": {
            "partnerCode": world["op_code"],
            "kind": "http-json",
            "jobs": ["PULL_ACTIVITY"],
            "config": json.dumps(config),
        }
    }
    configured = await execute(db, settings, world["admin"], CONFIGURE, variables)
    assert configured.data["configureConnector"]["errors"] == []
    await execute(db, settings, world["op"], SYNC, {"p": world["op_code"], "j": "PULL_ACTIVITY"})
    connector = await _wait_for_run(db, settings, world["op"], status="FAILED")
    assert connector["status"] == "DOWN" and "HTTP 503" in connector["lastError"]
    result = await execute(db, settings, world["op"], SYNC, {"p": world["op_code"], "j": "PULL_ACTIVITY"})
    assert result.data["syncConnector"] == {
        "run": None,
        "errors": [
            {
                "code": "UPSTREAM_UNAVAILABLE",
                "message": result.data["syncConnector"]["errors"][0]["message"],
                "field": None,
            }
        ],
    }


async def test_configure_connector_is_for_admin_and_checks_the_type_and_its_config(db, settings, world, tmp_path):
    variables = {
        "input": {
            "partnerCode": world["other_code"],
            "kind": "csv-batch",
            "jobs": ["PULL_ACTIVITY", "PULL_RECONCILIATION"],
            "config": json.dumps({"folder": str(tmp_path)}),
            "scheduleSeconds": 3600,
        }
    }
    assert _code(await execute(db, settings, world["other"], CONFIGURE, variables)) == "FORBIDDEN"
    result = await execute(db, settings, world["admin"], CONFIGURE, variables)
    payload = result.data["configureConnector"]
    assert payload["errors"] == []
    assert payload["connector"] == {
        "kind": "csv-batch",
        "status": "HEALTHY",
        "jobs": ["PULL_ACTIVITY", "PULL_RECONCILIATION"],
        "scheduleSeconds": 3600,
        "partner": {"code": world["other_code"]},
    }
    bad = dict(variables["input"], config="{not json")
    errors = (await execute(db, settings, world["admin"], CONFIGURE, {"input": bad})).data["configureConnector"][
        "errors"
    ]
    assert errors[0]["code"] == "INVALID_INPUT" and errors[0]["field"] == ["input", "config"]
    unknown = dict(variables["input"], kind="sftp")
    errors = (await execute(db, settings, world["admin"], CONFIGURE, {"input": unknown})).data["configureConnector"][
        "errors"
    ]
    assert errors[0]["field"] == ["input", "kind"]
    sponsor_job = dict(
        variables["input"], jobs=["PUSH_STATEMENT"], config=json.dumps({"statements": {"folder": str(tmp_path)}})
    )
    errors = (await execute(db, settings, world["admin"], CONFIGURE, {"input": sponsor_job})).data[
        "configureConnector"
    ]["errors"]
    assert "PUSH_STATEMENT is for SPONSOR" in errors[0]["message"]
