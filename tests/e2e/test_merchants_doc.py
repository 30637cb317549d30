"""The POS client printed in docs/merchants.md works against a live gateway, as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.checkout_world import World, build_world

DOC = Path(__file__).resolve().parents[2] / "docs" / "merchants.md"


def doc_pos_class():
    text = DOC.read_text()
    block = re.search(r"<!-- pos-example:start -->\s*```python\n(.*?)```\s*<!-- pos-example:end -->", text, re.S)
    assert block, "the example block is missing from docs/merchants.md"
    namespace: dict = {}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["Pos"]


@pytest.fixture
async def world(db, live_server) -> World:
    return await build_world(db, live_server.url)


async def test_the_documented_pos_client_pays_retries_and_refunds(world: World):
    w = world
    await w.credit(w.seoul, "kim", 5_000)
    Pos = doc_pos_class()
    pos = Pos(w.url, w.shop.reg.client_id, w.shop.reg.client_secret)

    code = w.code(w.seoul, "kim")
    paid = pos.pay(code, 4_500, "POS-7-000123")
    assert (paid["status"], paid["points"]) == ("CAPTURED", 4500)
    # The POS did not get the answer and tries again: the same payment, nothing taken twice.
    assert pos.pay(code, 4_500, "POS-7-000123")["id"] == paid["id"]
    # No answer at all (no attempt got through): the order is looked up.
    assert pos.pay(code, 4_500, "POS-7-000123", attempts=0)["id"] == paid["id"]
    assert w.balance(w.seoul, "kim") == (500, 0)

    refunded = pos.refund(paid["id"], 1_500, 1, "one item returned")
    assert (refunded["status"], refunded["refundedWon"]) == ("PARTIALLY_REFUNDED", 1500)
    with pytest.raises(RuntimeError, match="AMOUNT_EXCEEDS_CAPTURED"):
        pos.refund(paid["id"], 3_001, 2)
    with pytest.raises(RuntimeError, match="INSUFFICIENT_POINTS"):
        pos.pay(w.code(w.seoul, "kim"), 9_999, "POS-7-000124")
    with pytest.raises(RuntimeError, match="UNKNOWN"):
        pos.pay("1234123412341234", 10, "POS-7-000125", attempts=0)
