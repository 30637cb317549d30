"""Webhooks end to end, with two real gateway processes sharing one database: partners register
endpoints, walking is recorded through either process, and every event reaches each endpoint
subscribed to it once, signed the Standard Webhooks way."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from standardwebhooks import Webhook

from tests.support.auth import GatewayClient, register_partner
from tests.support.simulators import webhook_receiver  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
SEOUL = ZoneInfo("Asia/Seoul")
CREATE = """
mutation($u: String!) {
  createWebhookEndpoint(input: {url: $u, eventTypes: ["activity.credited"]}) { endpoint { id } secret errors { code message } }
}"""
RECORD = "mutation($input: RecordActivitiesInput!) { recordActivities(input: $input) { results { status } errors { code } } }"
DELIVERIES = "query { webhookDeliveries(first: 100) { edges { node { eventId status attempts endpoint { url } } } } }"


class GatewayProcess:
    """`uvicorn gateway.app:create_app` in a process of its own, scheduler on."""

    def __init__(self, settings, log_path: Path) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            GATEWAY_DATABASE_URL=settings.database_url,
            GATEWAY_SECRET_KEY=settings.secret_key,
            GATEWAY_ENV="development",
            GATEWAY_ISSUER=self.url,
            GATEWAY_SCHEDULER="1",
            GATEWAY_WEBHOOK_ALLOW_PRIVATE="1",
            GATEWAY_WEBHOOK_RETRY_SCHEDULE="0.5,0.5,0.5",
        )
        self.log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "gateway.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> GatewayProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway process exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the gateway process did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def two_gateways(settings, tmp_path):
    started = []
    try:
        for name in ("one", "two"):  # started together, as a deployment would
            started.append(GatewayProcess(settings, tmp_path / f"gateway-{name}.log"))
        for gateway in started:
            gateway.wait_ready()
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def walk_day() -> dt.date:
    day = dt.datetime.now(SEOUL).date() - dt.timedelta(days=2)
    return day if day.day != 11 else day - dt.timedelta(days=1)


async def test_with_two_gateway_processes_each_event_is_delivered_once_per_endpoint(db, two_gateways, webhook_receiver):
    scopes = ["activity:write", "members:read", "webhooks:manage"]
    seoul = await register_partner(
        db, code="seoul-walking", kind="OPERATOR", scopes=scopes, unit_code="SWM", won_per_point="1"
    )
    busan = await register_partner(
        db, code="busan-steps", kind="OPERATOR", scopes=scopes, unit_code="BSP", won_per_point="1"
    )
    one, two = two_gateways
    seoul_gw, busan_gw = GatewayClient.of(one.url, seoul), GatewayClient.of(two.url, busan)

    secrets = {}
    for gw, path in ((seoul_gw, "/seoul/a"), (seoul_gw, "/seoul/b"), (busan_gw, "/busan")):
        created = gw.data(CREATE, u=webhook_receiver.url + path)["createWebhookEndpoint"]
        assert created["errors"] == [], created
        secrets[path] = created["secret"]

    day = walk_day().isoformat()
    for gw, prefix in ((seoul_gw, "s"), (busan_gw, "b")):  # each through its own process
        walks = [
            {"memberExternalId": f"{prefix}-{i}", "date": day, "steps": 6000 + i, "distanceMeters": 4500 + i}
            for i in range(10)
        ]
        result = gw.data(RECORD, input={"activities": walks})["recordActivities"]
        assert result["results"] == [{"status": "CREDITED"}] * 10

    expected = 10 * 2 + 10  # seoul's events to its two endpoints, busan's to its one
    received = webhook_receiver.wait_for(expected, timeout=60)
    time.sleep(1.5)  # a duplicate, if any, would arrive by now
    received = webhook_receiver.received
    keys = [(r.headers["webhook-id"], r.path) for r in received]
    assert len(keys) == expected and len(set(keys)) == expected, "an event reached an endpoint twice"
    for r in received:
        body = Webhook(secrets[r.path]).verify(r.body, r.headers)
        assert body["type"] == "activity.credited"
    seoul_ids = {r.headers["webhook-id"] for r in received if r.path == "/seoul/a"}
    assert seoul_ids == {r.headers["webhook-id"] for r in received if r.path == "/seoul/b"} and len(seoul_ids) == 10

    deliveries = [e["node"] for e in seoul_gw.data(DELIVERIES)["webhookDeliveries"]["edges"]]
    assert len(deliveries) == 20 and {(d["status"], d["attempts"]) for d in deliveries} == {("DELIVERED", 1)}
    assert all(d["endpoint"]["url"].startswith(webhook_receiver.url + "/seoul/") for d in deliveries)
    assert json.loads(received[0].body)["timestamp"].endswith("Z")
