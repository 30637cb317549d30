"""Every setting of the gateway, read from the environment in one place.

docs/operations.md lists them; keep the two in step.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./mileage-gateway.db"


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    return int(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    issuer: str = "http://127.0.0.1:8000"
    #: The resource URI that access tokens name in `aud`.
    audience: str = "http://127.0.0.1:8000/graphql"
    env: str = "development"
    graphiql: bool = True
    #: Key material for encrypting private keys at rest and signing document URLs.
    secret_key: str = field(default="", repr=False)
    access_token_ttl: int = 900
    signing_key_rotation_days: int = 30

    # GraphQL limits (contract README, "GraphQL limits").
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_page_size: int = 500
    max_batch: int = 10
    max_body_bytes: int = 1024 * 1024
    batching: bool = False

    # Per-client rate limits (token bucket): sustained rate, burst, concurrency.
    rate_per_second: int = 50
    rate_burst: int = 100
    max_concurrent: int = 40

    activity_backdate_days: int = 400
    hold_ttl_seconds: int = 15 * 60
    payment_code_ttl_seconds: int = 180
    receive_code_ttl_seconds: int = 600
    document_url_ttl_seconds: int = 3600
    #: Records one bulk reconciliation upload may hold (POST /reconciliation/v1/reports).
    reconciliation_max_records: int = 10_000_000
    webhook_allow_private: bool = False
    scheduler: bool = True

    # Webhooks and connectors (docs/webhooks.md, docs/connectors.md).
    webhook_retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    webhook_timeout_seconds: float = 10.0
    connector_failure_threshold: int = 3
    connector_cooldown_seconds: int = 300
    connector_run_timeout_seconds: int = 600

    # Token endpoint limits (docs/oauth.md): requests per client id and per address (the
    # `limits` notation), and failed client authentications a minute before a client is slowed.
    token_rate_per_client: str = "60/minute"
    token_rate_per_address: str = "600/minute"
    auth_failures_per_minute: int = 5

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def development(self) -> bool:
        return self.env == "development"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        env = dict(os.environ if env is None else env)
        url = env.get("GATEWAY_DATABASE_URL") or DEFAULT_DATABASE_URL
        sqlite = url.startswith("sqlite")
        issuer = (env.get("GATEWAY_ISSUER") or "http://127.0.0.1:8000").rstrip("/")
        values = dict(
            database_url=url,
            issuer=issuer,
            audience=env.get("GATEWAY_AUDIENCE") or f"{issuer}/graphql",
            env=env.get("GATEWAY_ENV") or ("development" if sqlite else "production"),
            graphiql=_bool(env.get("GATEWAY_GRAPHIQL"), sqlite),
            secret_key=env.get("GATEWAY_SECRET_KEY") or _local_secret(url),
            access_token_ttl=min(_int(env, "GATEWAY_ACCESS_TOKEN_TTL", 900), 900),
            signing_key_rotation_days=_int(env, "GATEWAY_SIGNING_KEY_ROTATION_DAYS", 30),
            max_depth=_int(env, "GATEWAY_MAX_DEPTH", 12),
            max_aliases=_int(env, "GATEWAY_MAX_ALIASES", 30),
            max_tokens=_int(env, "GATEWAY_MAX_TOKENS", 5000),
            max_page_size=_int(env, "GATEWAY_MAX_PAGE_SIZE", 500),
            max_batch=_int(env, "GATEWAY_MAX_BATCH", 10),
            max_body_bytes=_int(env, "GATEWAY_MAX_BODY_BYTES", 1024 * 1024),
            batching=_bool(env.get("GATEWAY_BATCHING"), False),
            rate_per_second=_int(env, "GATEWAY_RATE_PER_SECOND", 50),
            rate_burst=_int(env, "GATEWAY_RATE_BURST", 100),
            max_concurrent=_int(env, "GATEWAY_MAX_CONCURRENT", 40),
            activity_backdate_days=_int(env, "GATEWAY_ACTIVITY_BACKDATE_DAYS", 400),
            hold_ttl_seconds=_int(env, "GATEWAY_HOLD_TTL_SECONDS", 15 * 60),
            payment_code_ttl_seconds=_int(env, "GATEWAY_PAYMENT_CODE_TTL_SECONDS", 180),
            receive_code_ttl_seconds=_int(env, "GATEWAY_RECEIVE_CODE_TTL_SECONDS", 600),
            document_url_ttl_seconds=_int(env, "GATEWAY_DOCUMENT_URL_TTL_SECONDS", 3600),
            reconciliation_max_records=_int(env, "GATEWAY_RECONCILIATION_MAX_RECORDS", 10_000_000),
            webhook_allow_private=_bool(env.get("GATEWAY_WEBHOOK_ALLOW_PRIVATE"), False),
            scheduler=_bool(env.get("GATEWAY_SCHEDULER"), True),
            webhook_retry_schedule=tuple(
                float(x) for x in (env.get("GATEWAY_WEBHOOK_RETRY_SCHEDULE") or "5,300,1800,7200,18000,36000,50400,72000,86400").split(",") if x.strip()
            ),
            webhook_timeout_seconds=float(env.get("GATEWAY_WEBHOOK_TIMEOUT_SECONDS") or 10),
            connector_failure_threshold=_int(env, "GATEWAY_CONNECTOR_FAILURE_THRESHOLD", 3),
            connector_cooldown_seconds=_int(env, "GATEWAY_CONNECTOR_COOLDOWN_SECONDS", 300),
            connector_run_timeout_seconds=_int(env, "GATEWAY_CONNECTOR_RUN_TIMEOUT_SECONDS", 600),
            token_rate_per_client=env.get("GATEWAY_TOKEN_RATE_PER_CLIENT") or "60/minute",
            token_rate_per_address=env.get("GATEWAY_TOKEN_RATE_PER_ADDRESS") or "600/minute",
            auth_failures_per_minute=_int(env, "GATEWAY_AUTH_FAILURES_PER_MINUTE", 5),
        )
        values.update(overrides)
        if not values["secret_key"]:
            raise RuntimeError(
                "GATEWAY_SECRET_KEY must be set when the database is not the embedded SQLite file"
            )
        return cls(**values)


def _local_secret(url: str) -> str:
    """On the embedded SQLite default, keep a generated secret beside the database file.

    Anything else (PostgreSQL, production) must set GATEWAY_SECRET_KEY explicitly.
    """
    if not url.startswith("sqlite"):
        return ""
    db_path = url.split("///", 1)[-1] or "mileage-gateway.db"
    if db_path.startswith(":memory:"):
        return secrets.token_urlsafe(32)
    path = Path(db_path).with_suffix(".secret")
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value
