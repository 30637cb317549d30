"""Sponsors over real HTTP with real tokens: campaigns, commitments from walking, matched
donations, and statements anyone can verify with the public JWKS alone."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from pypdf import PdfReader

from gateway import statements
from gateway.verify import VerificationError, verify_document
from tests.support.auth import GatewayClient, register_partner

ROOT = Path(__file__).resolve().parents[2]
SEOUL = ZoneInfo("Asia/Seoul")

OPERATOR_SCOPES = ["members:read", "activity:write", "campaigns:write", "donations:write", "donations:read"]
SPONSOR_SCOPES = ["campaigns:write", "donations:read", "statements:read"]
BENEFICIARY_SCOPES = ["donations:read", "statements:read"]

CAMPAIGN_FIELDS = """code name status startsOn endsOn wonPerKm goalSteps wonPerAchiever matchRatio budgetWon
  committedWon participants achievers distanceKm sponsor { code } beneficiary { code }"""
CREATE = f"""
mutation($input: CreateCampaignInput!) {{
  createCampaign(input: $input) {{ campaign {{ {CAMPAIGN_FIELDS} }} errors {{ code message field }} }}
}}"""
JOIN = """
mutation($input: JoinCampaignInput!) {
  joinCampaign(input: $input) { campaign { code participants } errors { code message field } }
}"""
RECORD = """
mutation($input: RecordActivitiesInput!) {
  recordActivities(input: $input) { results { status pointsCredited reason } errors { code message } }
}"""
CAMPAIGN = f"query($code: String!) {{ campaign(code: $code) {{ {CAMPAIGN_FIELDS} }} }}"
CAMPAIGNS = "query($status: CampaignStatus) { campaigns(status: $status) { edges { node { code status } } } }"
DONATE = """
mutation($input: DonatePointsInput!) {
  donatePoints(input: $input) {
    donation { id reference points unit wonValue matchedWon operator { code } beneficiary { code } campaign { code } }
    errors { code message field }
  }
}"""
DONATIONS = """
query($filter: DonationFilter, $first: Int, $after: String) {
  donations(filter: $filter, first: $first, after: $after) {
    edges { cursor node { reference points wonValue matchedWon campaign { code } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
BALANCE = "query($id: String!) { member(externalId: $id) { balance { available } } }"
STATEMENT = """
query($start: Date!, $end: Date!, $sponsor: String) {
  donationStatement(periodStart: $start, periodEnd: $end, sponsorCode: $sponsor) {
    sponsor { code } periodStart periodEnd totalWon issuedAt digest signature documentUrl csvUrl pdfUrl
    lines { campaign { code committedWon } beneficiary { code } distanceWon achievementWon matchedWon totalWon
            participants achievers distanceKm }
  }
}"""


def today() -> dt.date:
    return dt.datetime.now(SEOUL).date()


def ago(days: int) -> dt.date:
    return today() - dt.timedelta(days=days)


def walk(member: str, date: dt.date, metres: int, steps: int | None = None) -> dict:
    steps = steps if steps is not None else round(metres / 0.75)
    return {
        "memberExternalId": member,
        "date": date.isoformat(),
        "steps": steps,
        "distanceMeters": metres,
        "source": "app",
    }


class World:
    """An operator, two sponsors, a beneficiary, a merchant and the program office."""

    def __init__(self, url: str, **clients: GatewayClient) -> None:
        self.url = url
        for name, client in clients.items():
            setattr(self, name, client)

    def create(self, client: GatewayClient | None = None, **fields) -> dict:
        values = {
            "code": "warm-steps",
            "name": "Warm steps for older people",
            "beneficiaryCode": "sharing-foundation",
            "startsOn": ago(20).isoformat(),
            "endsOn": (today() + dt.timedelta(days=10)).isoformat(),
            "wonPerKm": "100",
            "wonPerAchiever": "0",
            "matchRatio": "1",
            "budgetWon": "1000000",
        }
        values.update(fields)
        payload = (client or self.sponsor).data(CREATE, input=values)["createCampaign"]
        assert payload["errors"] == [], payload["errors"]
        return payload["campaign"]

    def join(self, *members: str, campaign: str = "warm-steps") -> None:
        for member in members:
            payload = self.operator.data(JOIN, input={"memberExternalId": member, "campaignCode": campaign})[
                "joinCampaign"
            ]
            assert payload["errors"] == [], payload["errors"]

    def record(self, *walks: dict) -> list[dict]:
        payload = self.operator.data(RECORD, input={"activities": list(walks)})["recordActivities"]
        assert payload["errors"] == [] and all(r["status"] != "REJECTED" for r in payload["results"]), payload
        return payload["results"]

    def campaign(self, code: str = "warm-steps", client: GatewayClient | None = None) -> dict:
        return (client or self.sponsor).data(CAMPAIGN, code=code)["campaign"]

    def donate(self, member: str, points: int, key: str, campaign: str | None = "warm-steps") -> dict:
        return self.operator.data(
            DONATE,
            input={
                "memberExternalId": member,
                "beneficiaryCode": "sharing-foundation",
                "points": str(points),
                "campaignCode": campaign,
                "idempotencyKey": key,
            },
        )["donatePoints"]


@pytest.fixture
async def world(live_server, db) -> World:
    url = live_server.url
    regs = {
        "admin": await register_partner(db, code="office", kind="ADMIN", scopes=["admin"]),
        "operator": await register_partner(
            db, code="seoul-walking", kind="OPERATOR", scopes=OPERATOR_SCOPES, unit_code="SWM", won_per_point="1"
        ),
        "sponsor": await register_partner(
            db, code="yakult", kind="SPONSOR", scopes=SPONSOR_SCOPES, name="한국야쿠르트"
        ),
        "rival": await register_partner(db, code="other-sponsor", kind="SPONSOR", scopes=SPONSOR_SCOPES),
        "beneficiary": await register_partner(
            db, code="sharing-foundation", kind="BENEFICIARY", scopes=BENEFICIARY_SCOPES
        ),
        "merchant": await register_partner(
            db, code="corner-shop", kind="MERCHANT", scopes=["redemptions:read"], operator_code="seoul-walking"
        ),
    }
    return World(url, **{name: GatewayClient.of(url, reg) for name, reg in regs.items()})


def error_codes(result: dict) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in result.get("errors", [])]


# ---------------------------------------------------------------- campaigns and commitments


async def test_kilometres_and_achievements_commit_the_right_won(world):
    created = world.create(goalSteps="20000", wonPerAchiever="3000")
    assert (created["status"], created["committedWon"], created["sponsor"]["code"]) == ("ACTIVE", "0", "yakult")
    world.join("m-1", "m-2")
    world.record(
        walk("m-1", ago(15), 1234),
        walk("m-1", ago(14), 1234),
        walk("m-1", ago(13), 1234),
        walk("m-2", ago(15), 10_000, steps=13_334),
        walk("m-2", ago(14), 6_000, steps=8_000),
        walk("m-1", ago(25), 9_000),  # before the campaign: does not count
    )
    c = world.campaign()
    # 19.702 km at 100 won/km = 1,970 won (remainders carried), plus one achiever: 3,000 won.
    assert (c["distanceKm"], c["participants"], c["achievers"], c["committedWon"]) == ("19.702", "2", "1", "4970")

    # The operator corrects m-2's second day: the goal is no longer reached, the km shrink.
    [result] = world.record(walk("m-2", ago(14), 3_000, steps=4_000))
    assert result["status"] == "ADJUSTED"
    c = world.campaign()
    assert (c["distanceKm"], c["achievers"], c["committedWon"]) == ("16.702", "0", "1670")

    # Everyone but a merchant can list campaigns; each sees what is its own or names it.
    assert [e["node"]["code"] for e in world.operator.data(CAMPAIGNS, status="ACTIVE")["campaigns"]["edges"]] == [
        "warm-steps"
    ]
    assert world.beneficiary.data(CAMPAIGN, code="warm-steps")["campaign"]["committedWon"] == "1670"
    assert world.rival.data(CAMPAIGN, code="warm-steps")["campaign"] is None
    assert world.rival.data(CAMPAIGNS, status=None)["campaigns"]["edges"] == []
    assert world.operator.data(CAMPAIGNS, status="ENDED")["campaigns"]["edges"] == []
    assert error_codes(world.merchant.gql(CAMPAIGNS)) == ["FORBIDDEN"]


async def test_the_budget_cap_holds_exactly(world):
    world.create(budgetWon="1234")
    world.join("m-1", "m-2")
    world.record(walk("m-1", ago(10), 9_000))
    assert world.campaign()["committedWon"] == "900"
    world.record(walk("m-2", ago(10), 9_000))  # 900 due, 334 left
    assert world.campaign()["committedWon"] == "1234"
    world.record(walk("m-1", ago(9), 9_000), walk("m-2", ago(9), 9_000))
    c = world.campaign()
    assert (c["committedWon"], c["budgetWon"], c["distanceKm"]) == ("1234", "1234", "36")


async def test_who_may_create_and_join_campaigns(world):
    # A sponsor creates for itself only; ADMIN names the sponsor; an operator cannot create.
    assert error_codes(
        world.sponsor.gql(
            CREATE,
            input={
                "code": "x",
                "name": "x",
                "sponsorCode": "other-sponsor",
                "beneficiaryCode": "sharing-foundation",
                "startsOn": today().isoformat(),
                "endsOn": today().isoformat(),
                "wonPerKm": "1",
                "wonPerAchiever": "0",
                "matchRatio": "0",
                "budgetWon": "1",
            },
        )
    ) == ["FORBIDDEN"]
    assert error_codes(
        world.operator.gql(
            CREATE,
            input={
                "code": "x",
                "name": "x",
                "beneficiaryCode": "sharing-foundation",
                "startsOn": today().isoformat(),
                "endsOn": today().isoformat(),
                "wonPerKm": "1",
                "wonPerAchiever": "0",
                "matchRatio": "0",
                "budgetWon": "1",
            },
        )
    ) == ["FORBIDDEN"]
    by_admin = world.create(world.admin, code="palace-walks", sponsorCode="other-sponsor")
    assert by_admin["sponsor"]["code"] == "other-sponsor"
    missing = world.admin.data(
        CREATE,
        input={
            "code": "y",
            "name": "y",
            "beneficiaryCode": "sharing-foundation",
            "startsOn": today().isoformat(),
            "endsOn": today().isoformat(),
            "wonPerKm": "1",
            "wonPerAchiever": "0",
            "matchRatio": "0",
            "budgetWon": "1",
        },
    )
    assert [e["code"] for e in missing["createCampaign"]["errors"]] == ["INVALID_INPUT"]
    # Joining an unknown campaign: NOT_FOUND in the payload; a sponsor cannot enrol members.
    payload = world.operator.data(JOIN, input={"memberExternalId": "m-1", "campaignCode": "nope"})["joinCampaign"]
    assert [e["code"] for e in payload["errors"]] == ["NOT_FOUND"] and payload["campaign"] is None
    assert error_codes(world.sponsor.gql(JOIN, input={"memberExternalId": "m-1", "campaignCode": "palace-walks"})) == [
        "FORBIDDEN"
    ]


# ---------------------------------------------------------------- donations


async def test_matching_obeys_the_ratio_and_the_budget(world):
    world.create(wonPerKm="0", matchRatio="0.5", budgetWon="300")
    world.record(*(walk("kim", ago(n), 6_000, steps=8_000) for n in (2, 3, 4, 5)))
    points = int(world.operator.data(BALANCE, id="kim")["member"]["balance"]["available"])
    assert points >= 700

    first = world.donate("kim", 150, "d-1")
    assert first["errors"] == []
    assert (first["donation"]["wonValue"], first["donation"]["matchedWon"]) == ("150", "75")  # floor(150 x 0.5)
    replay = world.donate("kim", 150, "d-1")
    assert replay["donation"]["reference"] == first["donation"]["reference"]
    reused = world.donate("kim", 151, "d-1")
    assert [e["code"] for e in reused["errors"]] == ["IDEMPOTENCY_KEY_REUSED"]

    assert world.donate("kim", 401, "d-2")["donation"]["matchedWon"] == "200"  # floor(200.5)
    assert world.donate("kim", 49, "d-3")["donation"]["matchedWon"] == "24"  # floor(24.5)
    assert world.donate("kim", 10, "d-4")["donation"]["matchedWon"] == "1"  # 5 due, 1 left in the budget
    assert world.campaign()["committedWon"] == "300"
    refused = world.donate("kim", 10, "d-5")
    assert ([e["code"] for e in refused["errors"]], refused["donation"]) == (["BUDGET_EXHAUSTED"], None)
    left = int(world.operator.data(BALANCE, id="kim")["member"]["balance"]["available"])
    assert left == points - 150 - 401 - 49 - 10  # the refused donation took nothing
    plain = world.donate("kim", 5, "d-6", campaign=None)
    assert (plain["donation"]["matchedWon"], plain["donation"]["campaign"]) == ("0", None)

    # Each party sees the donations that concern it; pages are stable.
    def refs(client, **filter):
        return [
            e["node"]["reference"]
            for e in client.data(DONATIONS, filter=filter or None, first=50)["donations"]["edges"]
        ]

    everything = refs(world.operator)
    assert len(everything) == 5
    assert refs(world.beneficiary) == everything
    assert refs(world.sponsor) == everything[1:]  # not the one without a campaign
    assert refs(world.sponsor, campaignCode="warm-steps") == everything[1:]
    assert refs(world.admin, beneficiaryCode="sharing-foundation") == everything
    assert refs(world.rival) == []
    page = world.operator.data(DONATIONS, first=2)["donations"]
    rest = world.operator.data(DONATIONS, first=50, after=page["pageInfo"]["endCursor"])["donations"]
    assert [e["node"]["reference"] for e in page["edges"] + rest["edges"]] == everything
    assert error_codes(world.merchant.gql(DONATIONS)) == ["FORBIDDEN"]


# ---------------------------------------------------------------- statements


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + "?" + parts.query


async def test_statements_are_signed_and_verify_with_the_public_jwks_alone(world, tmp_path, live_server):
    world.create(goalSteps="10000", wonPerAchiever="2500")
    world.join("m-1", "m-2")
    world.record(
        walk("m-1", ago(12), 4_321, steps=5_000), walk("m-2", ago(12), 7_500, steps=10_000), walk("m-1", ago(11), 1_000)
    )
    start, end = ago(20), ago(8)  # a closed period
    st = world.sponsor.data(STATEMENT, start=start.isoformat(), end=end.isoformat())["donationStatement"]
    [line] = st["lines"]
    assert (line["campaign"]["code"], line["beneficiary"]["code"]) == ("warm-steps", "sharing-foundation")
    assert (line["distanceKm"], line["distanceWon"], line["achievementWon"], line["matchedWon"]) == (
        "12.821",
        "1282",
        "2500",
        "0",
    )
    assert (line["participants"], line["achievers"], line["totalWon"], st["totalWon"]) == ("2", "1", "3782", "3782")
    assert st["sponsor"]["code"] == "yakult" and st["documentUrl"].startswith(live_server.url + "/statements/")

    # The document, the JWKS, nothing else: the signature verifies, and fails on a changed byte.
    document = httpx.get(st["documentUrl"]).content
    assert hashlib.sha256(document).hexdigest() == st["digest"]
    jwks = httpx.get(world.url + "/.well-known/jwks.json").json()
    assert verify_document(document, st["signature"], jwks).digest == st["digest"]
    changed = document.replace(b'"totalWon":"3782"', b'"totalWon":"3783"')
    assert changed != document
    with pytest.raises(VerificationError):
        verify_document(changed, st["signature"], jwks)
    doc = json.loads(document)
    assert (doc["sponsor"], doc["provisional"], doc["currency"], doc["totalWon"]) == ("yakult", False, "KRW", "3782")
    assert sum(int(d["distanceWon"]) for d in doc["days"]) == 1282

    # The command-line verifier, against the live JWKS URL and a saved copy.
    (tmp_path / "statement.json").write_bytes(document)
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    (tmp_path / "changed.json").write_bytes(changed)
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "gateway.cli", "verify-document", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    ok = run(
        str(tmp_path / "statement.json"), "--jwks", world.url + "/.well-known/jwks.json", "--signature", st["signature"]
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == st["digest"]
    offline = run(
        str(tmp_path / "statement.json"),
        "--jwks",
        str(tmp_path / "jwks.json"),
        "--signature",
        st["signature"],
        "--digest",
        st["digest"],
    )
    assert offline.returncode == 0, offline.stderr
    bad = run(str(tmp_path / "changed.json"), "--jwks", str(tmp_path / "jwks.json"), "--signature", st["signature"])
    assert bad.returncode == 1 and "INVALID" in bad.stderr

    # CSV and PDF serve the same figures.
    csv_text = httpx.get(st["csvUrl"]).content.decode("utf-8")
    rows = csv_text.strip().splitlines()
    assert rows[0] == ",".join(statements.CSV_COLUMNS)
    assert rows[1:] == ["warm-steps,sharing-foundation,2,1,12.821,1282,2500,0,3782"]
    pdf = httpx.get(st["pdfUrl"])
    assert pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Total: 3,782 KRW" in text and "한국야쿠르트" in text and st["digest"] in text

    # Issued once: asking again gives the same bytes, even after late walking for the period.
    world.record(walk("m-1", ago(10), 2_000))
    again = world.sponsor.data(STATEMENT, start=start.isoformat(), end=end.isoformat())["donationStatement"]
    assert (again["digest"], again["signature"], again["issuedAt"]) == (st["digest"], st["signature"], st["issuedAt"])


async def test_a_sponsor_cannot_see_another_sponsors_statement(world):
    world.create()
    world.join("m-1")
    world.record(walk("m-1", ago(12), 5_000))
    variables = dict(start=ago(20).isoformat(), end=ago(8).isoformat())
    denied = world.rival.gql(STATEMENT, sponsor="yakult", **variables)
    assert error_codes(denied) == ["FORBIDDEN"] and denied["data"] is None
    assert "yakult" not in json.dumps(denied) and "500" not in json.dumps(denied)
    own = world.rival.data(STATEMENT, **variables)["donationStatement"]
    assert (own["sponsor"]["code"], own["lines"], own["totalWon"]) == ("other-sponsor", [], "0")
    assert error_codes(world.beneficiary.gql(STATEMENT, sponsor="yakult", **variables)) == ["FORBIDDEN"]
    assert error_codes(world.operator.gql(STATEMENT, sponsor="yakult", **variables)) == ["FORBIDDEN"]
    # The program office reads any sponsor's statement, naming it.
    office = world.admin.data(STATEMENT, sponsor="yakult", **variables)["donationStatement"]
    assert office["totalWon"] == "500"
    assert error_codes(world.admin.gql(STATEMENT, **variables)) == ["INVALID_INPUT"]


async def test_an_open_period_is_provisional(world):
    world.create()
    world.join("m-1")
    world.record(walk("m-1", ago(1), 5_000))
    st = world.sponsor.data(STATEMENT, start=ago(5).isoformat(), end=today().isoformat())["donationStatement"]
    doc = json.loads(httpx.get(st["documentUrl"]).content)
    assert doc["provisional"] is True and doc["totalWon"] == st["totalWon"] == "500"
    world.record(walk("m-1", ago(1), 6_000))
    later = world.sponsor.data(STATEMENT, start=ago(5).isoformat(), end=today().isoformat())["donationStatement"]
    assert later["totalWon"] == "600" and later["digest"] != st["digest"]
    # The first provisional document stays what its signature covers while its URL lives.
    assert hashlib.sha256(httpx.get(st["documentUrl"]).content).hexdigest() == st["digest"]


async def test_an_altered_or_expired_url_gets_403(world, live_server):
    world.create()
    st = world.sponsor.data(STATEMENT, start=ago(20).isoformat(), end=ago(8).isoformat())["donationStatement"]
    url = st["documentUrl"]
    assert httpx.get(url).status_code == 200
    base, query = url.split("?", 1)
    statement_id = int(base.rsplit("/", 1)[1].split(".")[0])
    sig = query.split("sig=")[1]
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    expires = int(query.split("expires=")[1].split("&")[0])
    for altered in (
        url.replace(f"sig={sig}", f"sig={flipped}"),
        url.replace(f"expires={expires}", f"expires={expires + 3600}"),
        url.replace(f"/statements/{statement_id}.json", f"/statements/{statement_id + 1}.json"),
        url.replace(".json?", ".pdf?"),
        base,
    ):
        assert httpx.get(altered).status_code == 403, altered
    expired = statements.statement_urls(
        base_url=live_server.url,
        secret_key=live_server.settings.secret_key,
        ttl_seconds=60,
        statement_id=statement_id,
        now=time.time() - 3600,
    )
    assert httpx.get(expired["json"]).status_code == 403
    assert httpx.get(expired["pdf"]).status_code == 403
    # Properly signed by the gateway's secret but naming no statement: 404, not a document.
    missing = statements.statement_urls(
        base_url=live_server.url,
        secret_key=live_server.settings.secret_key,
        ttl_seconds=60,
        statement_id=statement_id + 1000,
    )
    assert httpx.get(missing["json"]).status_code == 404
