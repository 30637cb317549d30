"""GATEWAY_SECRET_KEY strength (issue 17, item 11): outside development a key with fewer
than 256 bits of key material stops the gateway at startup with a clear message;
`mileage-gateway secret-key` prints one that passes."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/nowhere"  # never reached: settings fail first

WEAK = [
    "changeme",
    "test-secret-key-not-for-production",  # the test suite's own key
    "correct horse battery staple, a long passphrase",  # not base64 or hex at all
    secrets.token_hex(31),  # 248 bits
    secrets.token_urlsafe(31)[:42],  # 252 bits
    "0123456789abcdef" * 3,  # 48 hex digits: 192 bits, though 48 characters
    "z" * 64,  # enough characters, one symbol
    "abababababababababababababababababababababababab",
]
STRONG = [
    secrets.token_urlsafe(32),
    secrets.token_hex(32),
    base64.b64encode(secrets.token_bytes(32)).decode(),  # standard alphabet, with padding
    secrets.token_urlsafe(64),
]


def _env(key: str, **extra: str) -> dict[str, str]:
    return {"GATEWAY_DATABASE_URL": PG, "GATEWAY_SECRET_KEY": key, **extra}


@pytest.mark.parametrize("key", WEAK, ids=[f"weak-{i}" for i in range(len(WEAK))])  # xdist: same ids in every worker
def test_a_weak_key_is_refused_outside_development(key):
    for env in ({}, {"GATEWAY_ENV": "production"}, {"GATEWAY_ENV": "staging"}):
        with pytest.raises(RuntimeError, match="GATEWAY_SECRET_KEY is too weak .* 256 .*mileage-gateway secret-key"):
            Settings.from_env(_env(key, **env))


@pytest.mark.parametrize("key", STRONG, ids=[f"strong-{i}" for i in range(len(STRONG))])
def test_a_random_256_bit_key_is_accepted(key):
    assert Settings.from_env(_env(key)).secret_key == key


def test_development_accepts_any_key_and_old_keys_need_no_strength():
    assert Settings.from_env(_env("changeme", GATEWAY_ENV="development")).secret_key == "changeme"
    key = secrets.token_urlsafe(32)
    settings = Settings.from_env(_env(key, GATEWAY_OLD_SECRET_KEYS="changeme, test-secret-key-not-for-production"))
    assert settings.secret_key.previous == ("changeme", "test-secret-key-not-for-production")
    assert "changeme" not in repr(settings) and key not in repr(settings)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_stops_at_startup_on_a_weak_key_and_says_why():
    run = _cli("serve", "--no-migrate", "--port", "1", env=_env("changeme"))
    assert run.returncode == 2
    assert "GATEWAY_SECRET_KEY is too weak for GATEWAY_ENV=production" in run.stderr
    assert "mileage-gateway secret-key" in run.stderr and "Traceback" not in run.stderr
    assert "changeme" not in run.stderr  # the key itself is not echoed


def test_secret_key_prints_a_new_key_that_production_accepts():
    keys = [_cli("secret-key", env={}).stdout.strip() for _ in range(2)]
    assert keys[0] != keys[1]
    for key in keys:
        assert len(base64.urlsafe_b64decode(key + "=")) == 32
        assert Settings.from_env(_env(key)).secret_key == key
