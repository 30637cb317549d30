"""Changing GATEWAY_SECRET_KEY (issue 17, item 11): `mileage-gateway rekey` re-seals every
signing key, connector credential and webhook secret from the old key to the new one, on a
real database through the real command; a gateway on the new key alone then signs tokens,
reads credentials and signs webhooks with what was sealed before."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from connectors.runner import ConnectorRunner
from connectors.webhooks import DeliveryWorker
from gateway import connectors as connector_service
from gateway import webhooks
from gateway.models import ConnectorJob, ConnectorRunStatus, SigningKey, WebhookEndpoint
from gateway.outbox import emit
from gateway.secretbox import SealError, SecretKey, seal
from tests.conftest import _start_on
from tests.connectors.helpers import configure, connector_of, walk_day
from tests.gateway import factories
from tests.support.auth import get_token, post_graphql, register_partner
from tests.support.simulators import OperatorApi, operator_api, webhook_receiver  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]
VIEWER = "{ viewer { clientId } }"


def _rekey(settings, new_key: str, old_keys: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_ENV": "production",
        "GATEWAY_SECRET_KEY": new_key,
        "GATEWAY_OLD_SECRET_KEYS": old_keys,
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "rekey"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


async def _sealed(db) -> dict:
    async with db.session() as session:
        keys = dict((await session.execute(sa.select(SigningKey.kid, SigningKey.private_key_encrypted))).all())
        hooks = dict((await session.execute(sa.select(WebhookEndpoint.id, WebhookEndpoint.secret))).all())
    return {"keys": {k: bytes(v) for k, v in keys.items()}, "hooks": hooks}


def _api_config(api: OperatorApi) -> dict:
    return {
        "base_url": api.url,
        "auth": "bearer",
        "timeout_seconds": 2,
        "activity": {
            "path": "/activity",
            "fields": {
                "member_external_id": "userId",
                "date": "day",
                "steps": "stepCount",
                "distance_meters": "meters",
            },
            "has_more": "has_more",
            "page_size": 10,
        },
    }


async def test_rekey_moves_everything_to_the_new_key_and_the_gateway_runs_on_it(
    db, settings, live_server, operator_api, webhook_receiver
):
    old_key, new_key = settings.secret_key, secrets.token_urlsafe(32)
    # A gateway on the old key made its signing keys; a partner holds a token signed by one.
    reg = await register_partner(
        db, code="seoul-walking", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point="1"
    )
    token_before = get_token(live_server.url, reg.client_id, reg.client_secret)
    async with db.transaction() as session:
        op = await factories.operator(session)
    connector = await configure(
        db, op, "http-json", ["PULL_ACTIVITY"], _api_config(operator_api), credentials={"token": "sim-token"}
    )
    async with db.transaction() as session:
        endpoint, whsec = await webhooks.create_endpoint(
            session=session,
            secret_key=old_key,
            partner_id=op.id,
            url=webhook_receiver.url + "/hooks",
            event_types=["activity.credited"],
            allow_private=True,
        )
    live_server.stop()
    before = await _sealed(db)
    assert len(before["keys"]) == 2

    # During the change, the new key with the old one beside it reads what was sealed before.
    connector = await connector_of(db, connector.id)
    assert connector_service.credentials_of(connector, SecretKey(new_key, [old_key])) == {"token": "sim-token"}
    with pytest.raises(SealError):
        connector_service.credentials_of(connector, new_key)

    run = _rekey(settings, new_key, old_key)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        "signing_keys": {"resealed": 2, "already_current": 0},
        "connector_credentials": {"resealed": 1, "already_current": 0},
        "webhook_secrets": {"resealed": 1, "already_current": 0},
    }
    after = await _sealed(db)
    assert set(after["keys"]) == set(before["keys"]) and all(
        after["keys"][k] != before["keys"][k] for k in before["keys"]
    )
    assert after["hooks"][endpoint.id] != before["hooks"][endpoint.id]
    # The old key alone opens nothing any more; the new one alone opens everything.
    connector = await connector_of(db, connector.id)
    with pytest.raises(SealError):
        connector_service.credentials_of(connector, old_key)
    assert connector_service.credentials_of(connector, new_key) == {"token": "sim-token"}

    # A second run changes nothing.
    again = _rekey(settings, new_key, old_key)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "signing_keys": {"resealed": 0, "already_current": 2},
        "connector_credentials": {"resealed": 0, "already_current": 1},
        "webhook_secrets": {"resealed": 0, "already_current": 1},
    }
    assert await _sealed(db) == after

    # The gateway on the new key alone, at the same address.
    new_settings = dataclasses.replace(live_server.settings, secret_key=new_key)
    server = _start_on(new_settings, live_server.port)
    try:
        # It verifies the tokens signed before (same signing key, re-sealed) and signs new ones.
        assert post_graphql(server.url, token_before, VIEWER).status_code == 200
        fresh = get_token(server.url, reg.client_id, reg.client_secret)
        assert post_graphql(server.url, fresh, VIEWER).json()["data"]["viewer"] == {"clientId": reg.client_id}
    finally:
        server.stop()

    # It reads the connector credential (the simulator refuses any other bearer token)...
    operator_api.add_activity("kim", walk_day().isoformat(), 8000, 6000)
    pulled = await ConnectorRunner(db=db, settings=new_settings).sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert pulled.status == ConnectorRunStatus.COMPLETED, pulled.error
    assert pulled.records == 1

    # ... and signs webhooks with the endpoint's secret as the partner knows it.
    async with db.transaction() as session:
        event_id = await emit(
            session=session, type="activity.credited", partner_ids=[op.id], data={"member": "lee", "points": 1}
        )
    await webhooks.dispatch(db=db)
    worker = DeliveryWorker(db=db, settings=new_settings)
    try:
        await worker.drain()
    finally:
        await worker.aclose()
    received = [r for r in webhook_receiver.received if r.headers["webhook-id"] == event_id]
    assert received and Webhook(whsec).verify(received[0].body, received[0].headers)["data"]["member"] == "lee"


async def test_rekey_changes_nothing_when_a_value_opens_with_no_key_given(db, settings):
    old_key, new_key = settings.secret_key, secrets.token_urlsafe(32)
    async with db.transaction() as session:
        op = await factories.operator(session)
        good, _ = await webhooks.create_endpoint(
            session=session,
            secret_key=old_key,
            partner_id=op.id,
            url="https://hooks.example/a",
            event_types=["activity.credited"],
            allow_private=True,
        )
        stray, _ = await webhooks.create_endpoint(
            session=session,
            secret_key=old_key,
            partner_id=op.id,
            url="https://hooks.example/b",
            event_types=["activity.credited"],
            allow_private=True,
        )
        # Sealed with a key nobody passes to the command (a third, lost key).
        stray.secret = seal("a-key-lost-long-ago", "whsec_x", purpose=f"webhook-secret:{op.id}")
    before = await _sealed(db)

    run = _rekey(settings, new_key, old_key)
    assert run.returncode == 1
    assert f"webhook endpoint {stray.id} secret" in run.stderr and "nothing was changed" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    assert await _sealed(db) == before
    async with db.session() as session:
        assert webhooks.secret_of(await session.get(WebhookEndpoint, good.id), old_key).startswith("whsec_")
