"""Builders for settlement and reconciliation tests: an Ed25519 signer like the key store's,
flows inserted directly (they are the interface the checkout and exchange services write)."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from zoneinfo import ZoneInfo

from joserfc import jws
from joserfc.jwk import KeySet, OKPKey

from gateway.models import Agreement, FlowKind, SettlementFlow, SettlementPeriod

SEOUL = ZoneInfo("Asia/Seoul")
_refs = itertools.count(1)


class Ed25519Signer:
    """Signs as the key store does: a detached compact JWS, EdDSA, with a `kid`."""

    def __init__(self) -> None:
        self.kid = "test-" + secrets.token_hex(4)
        self.key = OKPKey.generate_key("Ed25519", parameters={"kid": self.kid})

    async def sign_detached(self, payload: bytes) -> str:
        return jws.detach_content(
            jws.serialize_compact({"alg": "EdDSA", "kid": self.kid}, payload, self.key, algorithms=["EdDSA"])
        )

    def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}


def verify_detached(signature: str, payload: bytes, jwks: dict) -> bool:
    try:
        jws.deserialize_compact(signature, KeySet.import_key_set(jwks), algorithms=["EdDSA"], payload=payload)
    except Exception:  # noqa: BLE001 - any failure is "does not verify"
        return False
    return True


def seoul(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SEOUL)


def fee(gross: int, fee_bps: int) -> int:
    return gross * fee_bps // 10_000


def reference() -> str:
    return f"mv_test{next(_refs):015d}"


async def flow(
    session, agreement: Agreement, kind: FlowKind, payer, payee, gross: int, at: dt.datetime, ref: str | None = None
) -> SettlementFlow:
    """A flow as the checkout/exchange services write it (fee per movement, floor)."""
    f = fee(gross, agreement.fee_bps)
    row = SettlementFlow(
        agreement_id=agreement.id,
        kind=kind,
        payer_id=payer.id,
        payee_id=payee.id,
        reference=ref or reference(),
        gross_won=gross,
        fee_won=f,
        net_won=gross - f,
        occurred_at=at,
        created_at=at,
    )
    session.add(row)
    await session.flush()
    return row


async def agreement(
    session,
    a,
    b,
    *,
    period: SettlementPeriod = SettlementPeriod.MONTHLY,
    starts_on=dt.date(2025, 1, 1),
    fee_bps: int = 250,
    ends_on=None,
) -> Agreement:
    ag = Agreement(
        code=f"ag-s{next(_refs)}",
        operator_a_id=a.id,
        operator_b_id=b.id,
        cross_redemption=True,
        point_exchange=True,
        fee_bps=fee_bps,
        settlement_period=period,
        starts_on=starts_on,
        ends_on=ends_on,
    )
    session.add(ag)
    await session.flush()
    return ag
