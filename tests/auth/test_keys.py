"""The key store: keys encrypted at rest, race-safe creation, rotation without breaking
tokens already issued, the JWKS, and detached signatures for documents."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json

import httpx
import pytest
import sqlalchemy as sa

from auth.keys import KeyStore, KeyStoreError, decrypt_private_key, rotate_cli, verify_detached
from gateway.db import Database
from gateway.models import SigningKey
from tests.auth.conftest import VIEWER, claims_of, forge, header_of
from tests.support.auth import get_token, post_graphql


async def _rows(db) -> list[SigningKey]:
    async with db.session() as session:
        return (await session.execute(sa.select(SigningKey).order_by(SigningKey.created_at))).scalars().all()


async def test_first_start_creates_one_key_of_each_kind(db, settings):
    store = KeyStore(db=db, settings=settings)

    await store.ensure_keys()
    await store.ensure_keys()  # a restart finds them

    rows = await _rows(db)
    assert sorted(r.alg for r in rows) == ["ES256", "EdDSA"]
    assert all(r.retired_at is None and r.publish_until is None for r in rows)
    jwks = await store.jwks()
    assert {(k["kty"], k.get("crv"), k["alg"]) for k in jwks["keys"]} == {
        ("EC", "P-256", "ES256"),
        ("OKP", "Ed25519", "EdDSA"),
    }


async def test_private_keys_are_stored_only_encrypted(db, settings):
    await KeyStore(db=db, settings=settings).ensure_keys()

    for row in await _rows(db):
        private = decrypt_private_key(settings.secret_key, kid=row.kid, alg=row.alg, blob=row.private_key_encrypted)
        d_text = private["d"]
        d_raw = base64.urlsafe_b64decode(d_text + "=" * (-len(d_text) % 4))
        blob = bytes(row.private_key_encrypted)
        assert d_text.encode() not in blob and d_raw not in blob
        assert b'"d"' not in blob and b"PRIVATE KEY" not in blob
        assert "d" not in json.loads(row.public_jwk)
        with pytest.raises(KeyStoreError):
            decrypt_private_key("another-secret", kid=row.kid, alg=row.alg, blob=row.private_key_encrypted)
        with pytest.raises(KeyStoreError):  # a ciphertext moved to another row does not decrypt
            decrypt_private_key(settings.secret_key, kid="other-kid", alg=row.alg, blob=row.private_key_encrypted)


async def test_the_jwks_never_shows_private_parts(live_server):
    jwks = httpx.get(live_server.url + "/.well-known/jwks.json").json()

    assert len(jwks["keys"]) == 2
    for key in jwks["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)
        assert key["use"] == "sig" and key["kid"]


async def test_processes_starting_together_create_one_key_of_each_kind(db, settings):
    databases = [Database(settings.database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(KeyStore(db=d, settings=settings).ensure_keys() for d in databases))
    finally:
        for d in databases:
            await d.dispose()

    rows = await _rows(db)
    assert sorted(r.alg for r in rows) == ["ES256", "EdDSA"]


async def test_rotation_keeps_earlier_tokens_valid_and_publishes_both_keys(db, operator, live_server):
    reg = await operator()
    before = get_token(live_server.url, reg.client_id, reg.client_secret)
    old_kid = header_of(before)["kid"]

    # `mileage-gateway keys rotate` is another process: it shares only the database.
    changes = await KeyStore(db=db, settings=live_server.settings).rotate()

    es256 = next(c for c in changes if c["alg"] == "ES256")
    assert es256["retired_kid"] == old_kid and es256["kid"] != old_kid
    jwks = httpx.get(live_server.url + "/.well-known/jwks.json").json()
    published = {k["kid"] for k in jwks["keys"] if k["alg"] == "ES256"}
    assert published == {old_kid, es256["kid"]}
    assert jwks["keys"][0]["kid"] in {c["kid"] for c in changes}  # current keys first
    assert post_graphql(live_server.url, before, VIEWER).status_code == 200
    after = get_token(live_server.url, reg.client_id, reg.client_secret)
    assert header_of(after)["kid"] == es256["kid"]
    assert post_graphql(live_server.url, after, VIEWER).status_code == 200


async def test_a_token_signed_by_another_process_with_a_new_key_is_accepted_at_once(db, operator, live_server):
    reg = await operator()
    token = get_token(live_server.url, reg.client_id, reg.client_secret)  # the server has its keys loaded
    other_process = KeyStore(db=db, settings=live_server.settings)
    await other_process.rotate()

    from_other = forge(other_process, live_server, claims={**claims_of(token), "jti": "signed-elsewhere"})

    assert header_of(from_other)["kid"] != header_of(token)["kid"]
    assert post_graphql(live_server.url, from_other, VIEWER).status_code == 200


async def test_a_retired_token_key_is_published_until_its_last_token_expires(db, settings):
    store = KeyStore(db=db, settings=settings)
    await store.ensure_keys()
    old_es256, old_eddsa = store.current_kid("ES256"), store.current_kid("EdDSA")

    await store.rotate()

    rows = {r.kid: r for r in await _rows(db)}
    retired = rows[old_es256]
    lifetime = retired.publish_until - retired.retired_at
    assert (
        dt.timedelta(seconds=settings.access_token_ttl)
        < lifetime
        <= dt.timedelta(seconds=settings.access_token_ttl + 300)
    )
    # Document signatures live on: a retired document key stays published.
    assert rows[old_eddsa].retired_at is not None and rows[old_eddsa].publish_until is None

    async with db.transaction() as session:  # its tokens have all expired now
        await session.execute(
            sa.update(SigningKey).where(SigningKey.kid == old_es256).values(publish_until=retired.retired_at)
        )
    await store.refresh()
    kids = {k["kid"] for k in (await store.jwks())["keys"]}
    assert old_es256 not in kids and old_eddsa in kids and len(kids) == 3


async def test_concurrent_rotations_leave_one_current_key_per_kind(db, settings):
    await KeyStore(db=db, settings=settings).ensure_keys()
    databases = [Database(settings.database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(KeyStore(db=d, settings=settings).rotate() for d in databases))
    finally:
        for d in databases:
            await d.dispose()

    rows = await _rows(db)
    current = [r.alg for r in rows if r.retired_at is None]
    assert sorted(current) == ["ES256", "EdDSA"]
    assert len(rows) == 2 + 2 * 3


async def test_the_token_key_rotates_on_schedule(db, settings):
    store = KeyStore(db=db, settings=settings)
    await store.ensure_keys()
    first = store.current_kid("ES256")
    assert await store.rotate_if_due() == []

    async with db.transaction() as session:
        await session.execute(
            sa.update(SigningKey)
            .where(SigningKey.kid == first)
            .values(
                created_at=sa.literal(
                    dt.datetime.now(dt.UTC) - dt.timedelta(days=settings.signing_key_rotation_days + 1),
                    SigningKey.created_at.type,
                )
            )
        )
    await KeyStore(db=db, settings=settings).ensure_keys()  # a restart rotates what is due

    await store.refresh()
    assert store.current_kid("ES256") != first


async def test_documents_are_signed_detached_with_eddsa_and_verify_after_rotation(db, settings):
    store = KeyStore(db=db, settings=settings)
    await store.ensure_keys()
    payload = b'{"currency":"KRW","totalWon":"12000"}'

    signature = await store.sign_detached(payload)

    header_b64, empty, sig = signature.split(".")
    assert empty == "" and sig
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    assert header == {"alg": "EdDSA", "kid": store.current_kid("EdDSA")}
    assert verify_detached(payload, signature, await store.jwks())
    assert not verify_detached(payload + b" ", signature, await store.jwks())
    assert await store.verify_detached(payload, signature)

    await store.rotate()
    assert store.current_kid("EdDSA") != header["kid"]
    assert verify_detached(payload, signature, await store.jwks())  # a partner's later check


async def test_keys_rotate_command_reports_what_it_did(db, settings):
    await KeyStore(db=db, settings=settings).ensure_keys()

    report = await rotate_cli(settings)

    json.dumps(report)
    assert sorted(c["alg"] for c in report["rotated"]) == ["ES256", "EdDSA"]
    assert all(c["retired_kid"] for c in report["rotated"])
    assert len(report["published"]) == 4


async def test_a_store_with_another_secret_key_cannot_load_the_keys(db, settings):
    await KeyStore(db=db, settings=settings).ensure_keys()
    stranger = KeyStore(db=db, settings=dataclasses.replace(settings, secret_key="another-secret"))

    with pytest.raises(KeyStoreError):
        await stranger.refresh()


async def test_housekeeping_jobs_rotate_when_due_and_forget_expired_jtis(db, settings):
    from auth.jobs import purge_expired_job, rotate_keys_if_due_job
    from gateway.jobs import JobContext
    from gateway.models import RevokedToken, UsedAssertion

    ctx = JobContext(db=db, settings=settings)
    await KeyStore(db=db, settings=settings).ensure_keys()
    now = dt.datetime.now(dt.UTC)
    async with db.transaction() as session:
        session.add_all(
            [
                RevokedToken(jti="gone", expires_at=now - dt.timedelta(minutes=1)),
                RevokedToken(jti="live", expires_at=now + dt.timedelta(minutes=10)),
                UsedAssertion(jti="gone", client_id="cl_x", expires_at=now - dt.timedelta(minutes=1)),
                UsedAssertion(jti="live", client_id="cl_x", expires_at=now + dt.timedelta(minutes=4)),
            ]
        )

    assert await rotate_keys_if_due_job(ctx) == []
    assert await purge_expired_job(ctx) == 2

    async with db.session() as session:
        assert (await session.execute(sa.select(RevokedToken.jti))).scalars().all() == ["live"]
        assert (await session.execute(sa.select(UsedAssertion.jti))).scalars().all() == ["live"]
