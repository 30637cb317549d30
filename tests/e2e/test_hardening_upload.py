"""Issue 17, item 2 (and the upload's share of item 9): the bulk reconciliation upload
cannot stall the gateway, and a hostile report is refused as a 4xx, over real HTTP.

A decompression bomb (200 MB of newlines, gzip-compressed to ~200 KB) is refused with 413
while `/healthz` keeps answering within 0.5 s, several bombs uploading at once; a CSV
amount of 5,000 digits, a NUL in a reference and a deeply nested JSON line are 400s naming
their line, and no run of theirs stays RUNNING."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import zlib

import httpx
import pytest
import sqlalchemy as sa

from gateway.models import ReconciliationRun, ReconciliationStatus, SettlementPeriod
from gateway.partners import create_agreement
from tests.support.auth import get_token, register_partner

SCOPES = ["settlements:read", "settlements:write"]
BOMB_BYTES = 200 * 1024 * 1024


def _bomb() -> bytes:
    """200 MB of newlines, gzip-compressed by streaming (never 200 MB in memory)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\n" * (1 << 20)
    parts = [deflater.compress(block) for _ in range(BOMB_BYTES // len(block))]
    parts.append(deflater.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _bomb()


@pytest.fixture
async def operator(db, live_server):
    """An operator with a settlements:write token, party to an agreement; the upload URL and params."""
    seoul = await register_partner(
        db, code="seoul-walking", kind="OPERATOR", scopes=SCOPES, unit_code="SWM", won_per_point="1"
    )
    await register_partner(db, code="busan-steps", kind="OPERATOR", scopes=SCOPES, unit_code="BSP", won_per_point="1")
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
    token = get_token(live_server.url, seoul.client_id, seoul.client_secret)

    class Operator:
        url = f"{live_server.url}/reconciliation/v1/reports"
        params = {"agreement": "seoul-busan", "periodStart": "2025-01-01", "periodEnd": "2025-01-31"}
        headers = {"Authorization": f"Bearer {token}"}
        base = live_server.url

    return Operator


async def _runs(db) -> list[ReconciliationStatus]:
    async with db.session() as s:
        return list((await s.execute(sa.select(ReconciliationRun.status).order_by(ReconciliationRun.id))).scalars())


async def test_a_gzip_bomb_is_refused_while_healthz_keeps_answering(operator, bomb, db):
    assert len(bomb) < 400_000  # ~200 KB on the wire for 200 MB of text
    answers: list[httpx.Response | Exception] = []

    def upload(content_type: str) -> None:
        try:
            answers.append(
                httpx.post(
                    operator.url,
                    params=operator.params,
                    content=bomb,
                    timeout=60,
                    headers={**operator.headers, "Content-Type": content_type, "Content-Encoding": "gzip"},
                )
            )
        except Exception as exc:  # noqa: BLE001 - recorded, asserted below
            answers.append(exc)

    attackers = [threading.Thread(target=upload, args=(kind,)) for kind in ("text/csv", "application/x-ndjson") * 2]
    for thread in attackers:
        thread.start()
    latencies = []
    with httpx.Client(base_url=operator.base, timeout=10) as probe:
        while any(t.is_alive() for t in attackers):
            started = time.monotonic()
            assert probe.get("/healthz").text == "ok"
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
    for thread in attackers:
        thread.join()

    assert len(answers) == 4
    for answer in answers:
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"] == "payload_too_large"
        assert "bytes" in answer.json()["message"]
    assert latencies and max(latencies) < 0.5, f"/healthz took up to {max(latencies):.2f} s during the attack"
    # The refused uploads left nothing running.
    assert set(await _runs(db)) <= {ReconciliationStatus.FAILED}


async def test_a_body_over_the_upload_limit_is_refused_before_it_is_read(operator, live_server):
    """A declared length over GATEWAY_UPLOAD_MAX_BYTES is answered at once, no byte of it sent."""
    limit = live_server.settings.upload_max_bytes
    query = "&".join(f"{k}={v}" for k, v in operator.params.items())
    head = (
        f"POST /reconciliation/v1/reports?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {operator.headers['Authorization']}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {limit + 1}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413"), answer
    assert json.loads(body)["error"] == "payload_too_large"


@pytest.mark.parametrize(
    "content_type, body, line",
    [
        # A 5,000-digit amount: int() refuses it (Python's 4,300-digit limit).
        (
            "text/csv",
            "reference,kind,amountWon,occurredAt\nmv_1,CROSS_REDEMPTION," + "9" * 5000 + ",2025-01-03T12:00:00Z\n",
            "line 2",
        ),
        # A NUL in a reference: PostgreSQL cannot store it.
        (
            "text/csv",
            "reference,kind,amountWon,occurredAt\nmv_1,CROSS_REDEMPTION,10,2025-01-03T12:00:00Z\nmv\x00x,EXCHANGE,1,2025-01-03T12:00:00Z\n",
            "line 3",
        ),
        # An unpaired surrogate, as JSON escapes it.
        (
            "application/x-ndjson",
            '{"reference": "mv_\\ud800", "kind": "EXCHANGE", "amountWon": 1, "occurredAt": "2025-01-03T12:00:00Z"}\n',
            "line 1",
        ),
        # A line nested 20,000 deep.
        ("application/x-ndjson", "[" * 20000 + "]" * 20000 + "\n", "line 1"),
        # An amount beyond the ledger's 64 bits, and an instant that overflows in UTC.
        (
            "application/x-ndjson",
            '{"reference": "mv_1", "kind": "EXCHANGE", "amountWon": 9223372036854775808, "occurredAt": "2025-01-03T12:00:00Z"}\n',
            "line 1",
        ),
        ("text/csv", "reference,kind,amountWon,occurredAt\nmv_1,EXCHANGE,1,0001-01-01T00:00:00+09:00\n", "line 2"),
    ],
    ids=["csv-5000-digits", "csv-nul", "ndjson-surrogate", "ndjson-nested", "ndjson-2^63", "csv-year-1"],
)
async def test_hostile_records_are_refused_with_400_naming_their_line(operator, db, content_type, body, line):
    answer = httpx.post(
        operator.url,
        params=operator.params,
        content=body.encode("utf-8", "surrogatepass"),
        headers={**operator.headers, "Content-Type": content_type},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["message"].startswith(line), answer.json()
    assert await _runs(db) == [ReconciliationStatus.FAILED]
