"""A small checkout world for end-to-end tests: two operators, their merchants, members with points.

Partners and clients are registered in the database (as an admin would); everything a
partner does afterwards goes over real HTTP with real tokens. Points are credited through
the ledger directly (walking is another area's test).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from gateway import ledger
from gateway.codes import issue_member_code
from gateway.db import Database
from gateway.members import enroll
from gateway.models import EntryKind, MemberCodePurpose, SettlementPeriod
from gateway.partners import create_agreement
from tests.support.auth import GatewayClient, Registered, register_partner

OPERATOR_SCOPES = ["members:read", "activity:write", "codes:issue", "redemptions:read", "exchange:write"]
MERCHANT_SCOPES = ["redemptions:write", "redemptions:read"]

REDEMPTION_FIELDS = """
  id reference orderId status amountWon capturedWon refundedWon points refundedPoints unit createdAt expiresAt
  merchant { code } memberOperator { code }
"""

AUTHORIZE = f"""
mutation($input: AuthorizeRedemptionInput!) {{
  authorizeRedemption(input: $input) {{ redemption {{ {REDEMPTION_FIELDS} }} errors {{ code message field }} }}
}}"""
CAPTURE = f"""
mutation($input: CaptureRedemptionInput!) {{
  captureRedemption(input: $input) {{ redemption {{ {REDEMPTION_FIELDS} }} errors {{ code message field }} }}
}}"""
VOID = f"""
mutation($input: VoidRedemptionInput!) {{
  voidRedemption(input: $input) {{ redemption {{ {REDEMPTION_FIELDS} }} errors {{ code message field }} }}
}}"""
REFUND = f"""
mutation($input: RefundRedemptionInput!) {{
  refundRedemption(input: $input) {{ redemption {{ {REDEMPTION_FIELDS} }} errors {{ code message field }} }}
}}"""
REDEMPTION = f"""query($id: ID!) {{ redemption(id: $id) {{ {REDEMPTION_FIELDS} }} }}"""
REDEMPTIONS = f"""
query($filter: RedemptionFilter, $first: Int, $after: String) {{
  redemptions(filter: $filter, first: $first, after: $after) {{
    edges {{ cursor node {{ {REDEMPTION_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
EXCHANGE = """
mutation($input: ExchangePointsInput!) {
  exchangePoints(input: $input) {
    exchange { id reference fromOperator { code } toOperator { code } fromPoints fromUnit toPoints toUnit wonValue feeWon createdAt }
    errors { code message field }
  }
}"""
ISSUE_CODE = """
mutation($input: IssueMemberCodeInput!) {
  issueMemberCode(input: $input) { memberCode { code purpose expiresAt } errors { code message } }
}"""
BALANCE = """query($id: String!) { member(externalId: $id) { balance { available held total } } }"""


@dataclass
class Party:
    reg: Registered
    gw: GatewayClient

    @property
    def id(self) -> int:
        return self.reg.partner_id

    @property
    def code(self) -> str:
        return self.reg.code


@dataclass
class World:
    url: str
    db: Database
    seoul: Party  # operator, unit SWM at 1 won a point
    busan: Party  # operator, unit BSP at 0.5 won a point
    shop: Party  # merchant of seoul
    other_shop: Party  # another merchant of seoul
    busan_shop: Party  # merchant of busan

    async def credit(self, operator: Party, external_id: str, points: int) -> None:
        await credit(self.db, operator.id, external_id, points)

    def code(self, operator: Party, external_id: str, purpose: str = "PAYMENT") -> str:
        return payment_code(operator.gw, external_id, purpose)

    def balance(self, operator: Party, external_id: str) -> tuple[int, int]:
        b = operator.gw.data(BALANCE, id=external_id)["member"]["balance"]
        return int(b["available"]), int(b["held"])

    async def agreement(self, *, cross_redemption=True, point_exchange=True, fee_bps=100) -> str:
        code = f"ag-{uuid.uuid4().hex[:8]}"
        async with self.db.transaction() as session:
            await create_agreement(
                session=session,
                code=code,
                operator_a_code=self.seoul.code,
                operator_b_code=self.busan.code,
                cross_redemption=cross_redemption,
                point_exchange=point_exchange,
                fee_bps=fee_bps,
                settlement_period=SettlementPeriod.MONTHLY,
                starts_on=dt.date(2020, 1, 1),
            )
        return code


async def party(db: Database, url: str, **kwargs) -> Party:
    reg = await register_partner(db, **kwargs)
    return Party(reg, GatewayClient.of(url, reg))


async def build_world(db: Database, url: str) -> World:
    seoul = await party(
        db, url, code="seoul-walking", kind="OPERATOR", scopes=OPERATOR_SCOPES, unit_code="SWM", won_per_point="1"
    )
    busan = await party(
        db, url, code="busan-steps", kind="OPERATOR", scopes=OPERATOR_SCOPES, unit_code="BSP", won_per_point="0.5"
    )
    shop = await party(
        db, url, code="mangwon-bakery", kind="MERCHANT", scopes=MERCHANT_SCOPES, operator_code="seoul-walking"
    )
    other = await party(
        db, url, code="hongdae-books", kind="MERCHANT", scopes=MERCHANT_SCOPES, operator_code="seoul-walking"
    )
    busan_shop = await party(
        db, url, code="haeundae-cafe", kind="MERCHANT", scopes=MERCHANT_SCOPES, operator_code="busan-steps"
    )
    return World(url=url, db=db, seoul=seoul, busan=busan, shop=shop, other_shop=other, busan_shop=busan_shop)


async def credit(db: Database, operator_id: int, external_id: str, points: int) -> None:
    """Enrol the member if new and credit `points` from its operator's issuance (an EARN)."""
    async with db.transaction() as session:
        member = await enroll(session=session, operator_id=operator_id, external_id=external_id)
        wallet = await ledger.wallet_account(session, member)
        issuance = await ledger.issuance_account(session, operator_id)
        await ledger.post(
            session=session, kind=EntryKind.EARN, legs=[ledger.Leg(issuance, wallet, points)], memo="walked (test)"
        )


async def codes_in_db(
    db: Database,
    operator_id: int,
    external_id: str,
    n: int,
    *,
    purpose=MemberCodePurpose.PAYMENT,
    now: dt.datetime | None = None,
    ttl_seconds: int = 600,
) -> list[str]:
    """`n` member codes issued directly (for many concurrent payments, or already expired ones)."""
    now = now or dt.datetime.now(dt.UTC)
    async with db.transaction() as session:
        return [
            (
                await issue_member_code(
                    session=session,
                    operator_id=operator_id,
                    external_id=external_id,
                    purpose=purpose,
                    now=now,
                    ttl_seconds=ttl_seconds,
                )
            ).code
            for _ in range(n)
        ]


def payment_code(operator_gw: GatewayClient, external_id: str, purpose: str = "PAYMENT") -> str:
    """What the member's app does: ask its operator for a code."""
    data = operator_gw.data(ISSUE_CODE, input={"memberExternalId": external_id, "purpose": purpose})["issueMemberCode"]
    assert data["errors"] == [], data["errors"]
    return data["memberCode"]["code"]


def key() -> str:
    return uuid.uuid4().hex
