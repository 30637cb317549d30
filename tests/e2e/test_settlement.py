"""Settlement and reconciliation over real HTTP: an admin closes a period, both operators
check the signed document against the JWKS and confirm it; operators reconcile their books
by GraphQL and by bulk upload."""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import time
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from auth.keys import verify_detached
from gateway import documents
from gateway.models import FlowKind, SettlementFlow, SettlementPeriod
from gateway.partners import create_agreement
from tests.support.auth import GatewayClient, get_token, register_partner

SEOUL = ZoneInfo("Asia/Seoul")
SCOPES = ["settlements:read", "settlements:write"]
R, RF, EX = FlowKind.CROSS_REDEMPTION, FlowKind.CROSS_REFUND, FlowKind.EXCHANGE

SETTLEMENT_FIELDS = """
  id status periodStart periodEnd netWon digest signature documentUrl disputeReason
  agreement { code }
  netPayer { code } netPayee { code }
  confirmedBy { code }
  lines { kind payer { code } payee { code } count grossWon feeWon netWon }
"""
CLOSE = (
    "mutation($input: CloseSettlementInput!) { closeSettlement(input: $input) { settlement {%s} errors { code message field } } }"
    % SETTLEMENT_FIELDS
)
CONFIRM = (
    "mutation($input: ConfirmSettlementInput!) { confirmSettlement(input: $input) { settlement {%s} errors { code message field } } }"
    % SETTLEMENT_FIELDS
)
DISPUTE = (
    "mutation($input: DisputeSettlementInput!) { disputeSettlement(input: $input) { settlement {%s} errors { code message field } } }"
    % SETTLEMENT_FIELDS
)
ONE = "query($id: ID!) { settlement(id: $id) {%s} }" % SETTLEMENT_FIELDS
LIST = (
    "query($code: String, $status: SettlementStatus) { settlements(agreementCode: $code, status: $status) { edges { node {%s} } } }"
    % SETTLEMENT_FIELDS
)

RUN_FIELDS = """
  id status partnerRecords matched missingInGateway missingAtPartner amountMismatch duplicates
  periodStart periodEnd partner { code } agreement { code } startedAt finishedAt
"""
SUBMIT = (
    "mutation($input: SubmitReconciliationReportInput!) { submitReconciliationReport(input: $input) { run {%s} errors { code message field } } }"
    % RUN_FIELDS
)
RUN = (
    """query($id: ID!, $kind: DiscrepancyKind, $first: Int, $after: String) { reconciliationRun(id: $id) {%s
  discrepancies(kind: $kind, first: $first, after: $after) { edges { node { id reference kind gatewayAmountWon partnerAmountWon status resolution } }
  pageInfo { hasNextPage endCursor } } } }"""
    % RUN_FIELDS
)
RESOLVE = "mutation($input: ResolveDiscrepancyInput!) { resolveDiscrepancy(input: $input) { discrepancy { id status resolution } errors { code message } } }"


def verify_settlement(gateway: str, settlement: dict) -> str:
    """docs/settlement.md's recipe, as a partner runs it: the digest to confirm with."""
    import base64

    import rfc8785
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    document = httpx.get(settlement["documentUrl"]).content
    assert rfc8785.dumps(json.loads(document)) == document
    digest = hashlib.sha256(document).hexdigest()
    header_b64, _, signature_b64 = settlement["signature"].split(".")
    header = json.loads(unb64(header_b64))
    assert header["alg"] == "EdDSA"
    jwks = httpx.get(f"{gateway}/.well-known/jwks.json").json()
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"] and k.get("crv") == "Ed25519")
    signing_input = header_b64.encode() + b"." + base64.urlsafe_b64encode(document).rstrip(b"=")
    Ed25519PublicKey.from_public_bytes(unb64(jwk["x"])).verify(unb64(signature_b64), signing_input)
    return digest


def month_start(day: dt.date, back: int = 0) -> dt.date:
    year, month = day.year, day.month - back
    while month < 1:
        year, month = year - 1, month + 12
    return dt.date(year, month, 1)


def month_end(first: dt.date) -> dt.date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=SEOUL)


@pytest.fixture
async def world(db, live_server):
    """Two operators with an agreement (2.5 % fee, monthly, from two months ago), a third
    operator outside it, and the program office."""
    admin = await register_partner(db, code="office", kind="ADMIN", scopes=["admin"])
    seoul = await register_partner(
        db, code="seoul-walking", kind="OPERATOR", scopes=SCOPES, unit_code="SWM", won_per_point="1"
    )
    busan = await register_partner(
        db, code="busan-steps", kind="OPERATOR", scopes=SCOPES, unit_code="BSP", won_per_point="0.5"
    )
    jeju = await register_partner(
        db, code="jeju-trails", kind="OPERATOR", scopes=SCOPES, unit_code="JJT", won_per_point="1"
    )
    today = dt.datetime.now(SEOUL).date()
    async with db.transaction() as s:
        agreement = await create_agreement(
            session=s,
            code="seoul-busan",
            operator_a_code="seoul-walking",
            operator_b_code="busan-steps",
            cross_redemption=True,
            point_exchange=True,
            fee_bps=250,
            settlement_period=SettlementPeriod.MONTHLY,
            starts_on=month_start(today, 2),
        )
    url = live_server.url

    class World:
        pass

    w = World()
    w.db, w.url, w.agreement, w.today, w.settings = db, url, agreement, today, live_server.settings
    w.admin, w.seoul, w.busan, w.jeju = admin, seoul, busan, jeju
    w.gw = {
        name: GatewayClient.of(url, reg)
        for name, reg in [("admin", admin), ("seoul", seoul), ("busan", busan), ("jeju", jeju)]
    }
    return w


async def add_flows(w, *flows) -> None:
    """(kind, payer, payee, gross, when, reference) as checkout and exchange write them."""
    async with w.db.transaction() as s:
        for kind, payer, payee, gross, when, reference in flows:
            fee = gross * w.agreement.fee_bps // 10_000
            s.add(
                SettlementFlow(
                    agreement_id=w.agreement.id,
                    kind=kind,
                    payer_id=payer.partner_id,
                    payee_id=payee.partner_id,
                    reference=reference,
                    gross_won=gross,
                    fee_won=fee,
                    net_won=gross - fee,
                    occurred_at=when,
                    created_at=when,
                )
            )


async def test_a_closed_period_is_signed_verified_against_the_jwks_and_confirmed_by_both(world):
    w = world
    last = month_start(w.today, 1)
    sw, bs = w.seoul, w.busan
    await add_flows(
        w,
        (
            R,
            sw,
            bs,
            10_000,
            at(last.replace(day=3)),
            "mv_a1",
        ),  # Seoul's member pays at a Busan shop: fee 250, net 9,750
        (R, bs, sw, 20_000, at(last.replace(day=4)), "mv_b1"),  # and the other way: fee 500, net 19,500
        (
            RF,
            sw,
            bs,
            4_000,
            at(last.replace(day=5)),
            "mv_b1",
        ),  # part of it refunded: Seoul pays back, fee 100, net 3,900
        (EX, sw, bs, 3_000, at(last.replace(day=6)), "mv_x1"),  # fee 75, net 2,925
        (EX, bs, sw, 1_000, at(last.replace(day=7)), "mv_x2"),  # fee 25, net 975
    )
    closed = w.gw["admin"].data(
        CLOSE, input={"agreementCode": "seoul-busan", "periodEnd": month_end(last).isoformat()}
    )["closeSettlement"]
    assert closed["errors"] == []
    s = closed["settlement"]
    # Seoul owes 9,750 + 3,900 + 2,925 = 16,575; Busan owes 19,500 + 975 = 20,475: Busan pays Seoul 3,900.
    assert (s["status"], s["netPayer"], s["netPayee"], s["netWon"]) == (
        "CLOSED",
        {"code": "busan-steps"},
        {"code": "seoul-walking"},
        "3900",
    )
    assert [
        (l["kind"], l["payer"]["code"], l["count"], l["grossWon"], l["feeWon"], l["netWon"]) for l in s["lines"]
    ] == [
        ("CROSS_REDEMPTION", "seoul-walking", "1", "10000", "250", "9750"),
        ("CROSS_REDEMPTION", "busan-steps", "1", "20000", "500", "19500"),
        ("CROSS_REFUND", "seoul-walking", "1", "4000", "100", "3900"),
        ("EXCHANGE", "seoul-walking", "1", "3000", "75", "2925"),
        ("EXCHANGE", "busan-steps", "1", "1000", "25", "975"),
    ]

    # What a partner does: fetch the document, hash it, verify the signature with the JWKS.
    document = httpx.get(s["documentUrl"], timeout=10)
    assert document.status_code == 200 and document.headers["content-type"].startswith("application/json")
    assert hashlib.sha256(document.content).hexdigest() == s["digest"]
    jwks = httpx.get(f"{w.url}/.well-known/jwks.json", timeout=10).json()
    assert verify_detached(document.content, s["signature"], jwks)
    assert not verify_detached(document.content.replace(b'"3900"', b'"3901"'), s["signature"], jwks)
    body = json.loads(document.content)
    assert (
        body["agreement"],
        body["operatorA"],
        body["operatorB"],
        body["netPayer"],
        body["netWon"],
        body["currency"],
    ) == ("seoul-busan", "seoul-walking", "busan-steps", "busan-steps", "3900", "KRW")
    assert body["periodStart"] == last.isoformat() and body["closedAt"].endswith("+00:00")
    tampered = s["documentUrl"].replace("expires=", "expires=9")
    assert httpx.get(tampered, timeout=10).status_code == 403
    other = (
        s["documentUrl"].replace("/settlements/", "/settlements/1").split("?")[0] + "?" + s["documentUrl"].split("?")[1]
    )
    assert httpx.get(other, timeout=10).status_code == 403
    path = "/" + s["documentUrl"].split("/", 3)[3].split("?")[0]
    expired = documents.signed_url(base_url=w.url, path=path, secret_key=w.settings.secret_key, ttl_seconds=-1)
    assert httpx.get(expired, timeout=10).status_code == 403
    fresh = documents.signed_url(base_url=w.url, path=path, secret_key=w.settings.secret_key, ttl_seconds=60)
    assert httpx.get(fresh, timeout=10).content == document.content

    # Tenancy: the third operator sees nothing and cannot act.
    assert w.gw["jeju"].data(ONE, id=s["id"])["settlement"] is None
    assert w.gw["jeju"].data(LIST, code="seoul-busan")["settlements"]["edges"] == []
    refused = w.gw["jeju"].data(CONFIRM, input={"settlementId": s["id"], "digest": s["digest"]})["confirmSettlement"]
    assert refused["settlement"] is None and [e["code"] for e in refused["errors"]] == ["NOT_FOUND"]

    reader = await register_partner(
        w.db, code="daegu-walks", kind="OPERATOR", scopes=["settlements:read"], unit_code="DGW", won_per_point="1"
    )
    no_scope = GatewayClient.of(w.url, reader).gql(CONFIRM, input={"settlementId": s["id"], "digest": s["digest"]})
    assert no_scope["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    wrong = w.gw["seoul"].data(CONFIRM, input={"settlementId": s["id"], "digest": "ab" * 32})["confirmSettlement"]
    assert wrong["settlement"] is None and wrong["errors"][0]["code"] == "DIGEST_MISMATCH"
    mine = verify_settlement(w.url, s)
    one = w.gw["seoul"].data(CONFIRM, input={"settlementId": s["id"], "digest": mine})["confirmSettlement"][
        "settlement"
    ]
    assert (one["status"], one["confirmedBy"]) == ("CLOSED", [{"code": "seoul-walking"}])
    disputed = w.gw["busan"].data(DISPUTE, input={"settlementId": s["id"], "reason": "exchange mv_x2 is ours"})[
        "disputeSettlement"
    ]["settlement"]
    assert (disputed["status"], disputed["disputeReason"]) == ("DISPUTED", "exchange mv_x2 is ours")
    both = w.gw["busan"].data(CONFIRM, input={"settlementId": s["id"], "digest": mine})["confirmSettlement"][
        "settlement"
    ]
    assert both["status"] == "CONFIRMED" and both["confirmedBy"] == [{"code": "seoul-walking"}, {"code": "busan-steps"}]
    assert both["digest"] == s["digest"] and both["disputeReason"] is None

    # Operators see the two closed months and the open current one (provisional figures).
    listed = w.gw["busan"].data(LIST, code="seoul-busan")["settlements"]["edges"]
    assert [(e["node"]["periodStart"], e["node"]["status"]) for e in listed] == [
        (w.today.replace(day=1).isoformat(), "OPEN"),
        (last.isoformat(), "CONFIRMED"),
        (month_start(w.today, 2).isoformat(), "CLOSED"),
    ]
    assert listed[0]["node"]["digest"] == "" and listed[0]["node"]["documentUrl"] == ""


async def test_a_late_movement_lands_in_the_next_period_and_closing_is_for_admins(world):
    w = world
    last = month_start(w.today, 1)
    await add_flows(w, (R, w.seoul, w.busan, 1_000, at(last.replace(day=2)), "mv_on_time"))
    admin = w.gw["admin"]
    assert (
        admin.data(CLOSE, input={"agreementCode": "seoul-busan", "periodEnd": month_end(last).isoformat()})[
            "closeSettlement"
        ]["errors"]
        == []
    )
    await add_flows(w, (R, w.busan, w.seoul, 8_000, at(last.replace(day=20)), "mv_late"))  # committed after the close

    again = admin.data(CLOSE, input={"agreementCode": "seoul-busan", "periodEnd": month_end(last).isoformat()})[
        "closeSettlement"
    ]
    assert again["settlement"] is None and again["errors"][0]["code"] == "INVALID_STATE"
    not_an_end = admin.data(
        CLOSE, input={"agreementCode": "seoul-busan", "periodEnd": w.today.replace(day=1).isoformat()}
    )["closeSettlement"]
    assert not_an_end["errors"][0]["code"] == "INVALID_INPUT" and not_an_end["errors"][0]["field"] == [
        "input",
        "periodEnd",
    ]

    # The open current month already shows the late movement (provisional), then closes early with it.
    [current] = w.gw["seoul"].data(LIST, code="seoul-busan", status="OPEN")["settlements"]["edges"]
    assert (current["node"]["netPayer"], current["node"]["netWon"]) == ({"code": "busan-steps"}, "7800")
    early = admin.data(
        CLOSE, input={"agreementCode": "seoul-busan", "periodEnd": month_end(w.today.replace(day=1)).isoformat()}
    )["closeSettlement"]
    assert early["errors"] == []
    assert [(l["kind"], l["payer"]["code"], l["grossWon"]) for l in early["settlement"]["lines"]] == [
        ("CROSS_REDEMPTION", "busan-steps", "8000")
    ]
    assert early["settlement"]["id"] == current["node"]["id"]

    forbidden = w.gw["seoul"].gql(
        CLOSE, input={"agreementCode": "seoul-busan", "periodEnd": month_end(last).isoformat()}
    )
    assert forbidden["data"] is None or forbidden["data"]["closeSettlement"] is None
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def wait_for_run(gw: GatewayClient, run_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = gw.data(RUN, id=run_id)["reconciliationRun"]
        if run["status"] != "RUNNING" or time.monotonic() > deadline:
            return run
        time.sleep(0.1)


async def test_a_report_submitted_by_graphql_is_classified_and_discrepancies_resolved(world):
    w = world
    last = month_start(w.today, 1)
    day = at(last.replace(day=10))
    await add_flows(
        w,
        (R, w.seoul, w.busan, 10_000, day, "mv_ok"),
        (R, w.seoul, w.busan, 5_000, day, "mv_amount"),
        (R, w.busan, w.seoul, 3_000, day, "mv_not_reported"),
        (EX, w.seoul, w.busan, 2_000, day, "mv_twice"),
    )
    record = lambda ref, kind, won: {  # noqa: E731
        "reference": ref,
        "kind": kind,
        "amountWon": str(won),
        "occurredAt": day.isoformat(),
    }
    submitted = w.gw["busan"].data(
        SUBMIT,
        input={
            "agreementCode": "seoul-busan",
            "periodStart": last.isoformat(),
            "periodEnd": month_end(last).isoformat(),
            "records": [
                record("mv_ok", "CROSS_REDEMPTION", 10_000),
                record("mv_amount", "CROSS_REDEMPTION", 5_050),
                record("mv_unknown", "CROSS_REFUND", 700),
                record("mv_twice", "EXCHANGE", 2_000),
                record("mv_twice", "EXCHANGE", 2_000),
            ],
        },
    )["submitReconciliationReport"]
    assert submitted["errors"] == [] and submitted["run"]["partner"] == {"code": "busan-steps"}
    run = wait_for_run(w.gw["busan"], submitted["run"]["id"])
    assert (
        run["status"],
        run["partnerRecords"],
        run["matched"],
        run["missingInGateway"],
        run["missingAtPartner"],
        run["amountMismatch"],
        run["duplicates"],
    ) == ("COMPLETED", "5", "2", "1", "1", "1", "1")
    assert run["finishedAt"] is not None

    # Paginated, filtered by kind; the other party sees the run too, a stranger does not.
    page = w.gw["seoul"].data(RUN, id=run["id"], first=2)["reconciliationRun"]["discrepancies"]
    assert len(page["edges"]) == 2 and page["pageInfo"]["hasNextPage"]
    rest = w.gw["seoul"].data(RUN, id=run["id"], first=2, after=page["pageInfo"]["endCursor"])["reconciliationRun"][
        "discrepancies"
    ]
    assert len(rest["edges"]) == 2 and not rest["pageInfo"]["hasNextPage"]
    [mismatch] = w.gw["seoul"].data(RUN, id=run["id"], kind="AMOUNT_MISMATCH")["reconciliationRun"]["discrepancies"][
        "edges"
    ]
    assert (
        mismatch["node"]["reference"],
        mismatch["node"]["gatewayAmountWon"],
        mismatch["node"]["partnerAmountWon"],
    ) == ("mv_amount", "5000", "5050")
    assert w.gw["jeju"].data(RUN, id=run["id"])["reconciliationRun"] is None

    stranger = w.gw["jeju"].data(RESOLVE, input={"discrepancyId": mismatch["node"]["id"], "resolution": "x"})[
        "resolveDiscrepancy"
    ]
    assert stranger["discrepancy"] is None and stranger["errors"][0]["code"] == "NOT_FOUND"
    resolved = w.gw["seoul"].data(
        RESOLVE, input={"discrepancyId": mismatch["node"]["id"], "resolution": "till typo, 5,000 is right"}
    )["resolveDiscrepancy"]
    assert resolved["discrepancy"] == {
        "id": mismatch["node"]["id"],
        "status": "RESOLVED",
        "resolution": "till typo, 5,000 is right",
    }

    not_party = w.gw["jeju"].data(
        SUBMIT,
        input={
            "agreementCode": "seoul-busan",
            "periodStart": last.isoformat(),
            "periodEnd": month_end(last).isoformat(),
            "records": [],
        },
    )["submitReconciliationReport"]
    assert not_party["run"] is None and not_party["errors"][0]["code"] == "NOT_FOUND"


async def test_a_large_report_is_uploaded_in_bulk_and_matched(world):
    w = world
    last = month_start(w.today, 1)
    day = at(last.replace(day=15))
    n = 12_000
    async with w.db.transaction() as s:
        fee = lambda g: g * w.agreement.fee_bps // 10_000  # noqa: E731
        rows = [
            dict(
                agreement_id=w.agreement.id,
                kind=R,
                payer_id=w.seoul.partner_id,
                payee_id=w.busan.partner_id,
                reference=f"mv_bulk{i:07d}",
                gross_won=1_000 + i,
                fee_won=fee(1_000 + i),
                net_won=1_000 + i - fee(1_000 + i),
                occurred_at=day,
                created_at=day,
            )
            for i in range(n)
        ]
        await s.execute(sa.insert(SettlementFlow), rows)

    def csv_body():
        """Streamed in chunks, as a partner's export would be; the last 3 gateway movements
        are not in it, one amount differs, one line is repeated and one is unknown."""
        yield b"reference,kind,amountWon,occurredAt\n"
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for i in range(n - 3):
            writer.writerow([f"mv_bulk{i:07d}", "CROSS_REDEMPTION", 1_000 + i + (1 if i == 42 else 0), day.isoformat()])
            if i == 7:
                writer.writerow([f"mv_bulk{i:07d}", "CROSS_REDEMPTION", 1_000 + i, day.isoformat()])
            if buffer.tell() > 64_000:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        writer.writerow(["mv_nobody", "EXCHANGE", 5, day.isoformat()])
        yield buffer.getvalue().encode()

    token = get_token(w.url, w.seoul.client_id, w.seoul.client_secret)
    endpoint = f"{w.url}/reconciliation/v1/reports"
    params = {"agreement": "seoul-busan", "periodStart": last.isoformat(), "periodEnd": month_end(last).isoformat()}
    answer = httpx.post(
        endpoint,
        params=params,
        content=csv_body(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
        timeout=120,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["run"]["partnerRecords"] == str(n - 3 + 2)
    run = wait_for_run(w.gw["seoul"], answer.json()["run"]["id"])
    assert (
        run["status"],
        run["partnerRecords"],
        run["matched"],
        run["missingInGateway"],
        run["missingAtPartner"],
        run["amountMismatch"],
        run["duplicates"],
    ) == ("COMPLETED", str(n - 1), str(n - 4), "1", "3", "1", "1")

    # JSON lines, gzip-compressed, work the same way.
    lines = "\n".join(
        json.dumps(
            {
                "reference": f"mv_bulk{i:07d}",
                "kind": "CROSS_REDEMPTION",
                "amountWon": 1_000 + i,
                "occurredAt": day.isoformat(),
            }
        )
        for i in range(n)
    )
    answer = httpx.post(
        endpoint,
        params=params,
        content=gzip.compress(lines.encode()),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "gzip",
        },
        timeout=120,
    )
    assert answer.status_code == 202, answer.text
    run = wait_for_run(w.gw["seoul"], answer.json()["run"]["id"])
    assert (run["status"], run["matched"], run["missingAtPartner"]) == ("COMPLETED", str(n), "0")

    # Refusals: no token, a token without the scope, another tenant's agreement, a bad line.
    csv_header = {"Content-Type": "text/csv"}
    assert httpx.post(endpoint, params=params, content=b"", headers=csv_header).status_code == 401
    reader = await register_partner(
        w.db, code="daegu-walks", kind="OPERATOR", scopes=["settlements:read"], unit_code="DGW", won_per_point="1"
    )
    read_only = get_token(w.url, reader.client_id, reader.client_secret)
    refused = httpx.post(
        endpoint, params=params, content=b"", headers={**csv_header, "Authorization": f"Bearer {read_only}"}
    )
    assert refused.status_code == 403 and "insufficient_scope" in refused.headers["www-authenticate"]
    jeju = get_token(w.url, w.jeju.client_id, w.jeju.client_secret)
    assert (
        httpx.post(
            endpoint, params=params, content=b"", headers={**csv_header, "Authorization": f"Bearer {jeju}"}
        ).status_code
        == 404
    )
    bad = httpx.post(
        endpoint,
        params=params,
        headers={**csv_header, "Authorization": f"Bearer {token}"},
        content=b"reference,kind,amountWon,occurredAt\nmv_1,CROSS_REDEMPTION,12,2025-01-01T00:00:00Z\nmv_2,GIFT,1,2025-01-01T00:00:00Z\n",
    )
    assert bad.status_code == 400 and "line 3" in bad.json()["message"]
    unsupported = httpx.post(
        endpoint,
        params=params,
        content=b"{}",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    assert unsupported.status_code == 415
