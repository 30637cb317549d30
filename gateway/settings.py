"""Every setting of the gateway, read from the environment in one place.

docs/operations.md lists them; keep the two in step.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from gateway.secretbox import SecretKey, weakness

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
    #: Key material for encrypting private keys at rest and signing document URLs. From the
    #: environment, a `SecretKey` carrying GATEWAY_OLD_SECRET_KEYS, which only open what
    #: was sealed before a key change (docs/operations.md, "Changing the secret key").
    secret_key: str = field(default="", repr=False)
    access_token_ttl: int = 900
    signing_key_rotation_days: int = 30

    # GraphQL limits (contract README, "GraphQL limits").
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    #: Fields an operation may hold once every fragment spread is expanded, and the most
    #: an operation may cost (schema/cost.py, docs/graphql-limits.md).
    max_fields: int = 2000
    max_query_cost: int = 10_000
    max_page_size: int = 500
    max_batch: int = 10
    max_body_bytes: int = 1024 * 1024
    batching: bool = False
    #: Automatic persisted queries: the longest query text stored (bytes of UTF-8), and how
    #: many each partner keeps (beyond that the least recently used go); last use is
    #: recorded at most once per `persisted_query_touch_seconds` per query and process.
    persisted_query_max_bytes: int = 32 * 1024
    persisted_queries_per_partner: int = 1000
    persisted_query_touch_seconds: int = 60
    #: Development only: keep an unexpected error's own message beside its INTERNAL code.
    debug_errors: bool = False

    # Per-client rate limits (token bucket): sustained rate, burst, concurrency.
    rate_per_second: float = 50
    rate_burst: int = 100
    max_concurrent: int = 40

    activity_backdate_days: int = 400
    hold_ttl_seconds: int = 15 * 60
    payment_code_ttl_seconds: int = 180
    receive_code_ttl_seconds: int = 600
    document_url_ttl_seconds: int = 3600
    #: Records one bulk reconciliation upload may hold (POST /reconciliation/v1/reports).
    reconciliation_max_records: int = 10_000_000
    #: Bulk uploads: bytes on the wire, bytes after gzip, and how much larger than what was
    #: read the inflated text may grow (a decompression bomb is refused with 413).
    upload_max_bytes: int = 1024**3
    upload_max_decompressed_bytes: int = 1024**3
    upload_max_compression_ratio: int = 100
    #: A request body must arrive within this many seconds (plus one per `body_min_rate`
    #: bytes received) of waiting for it, or the client gets 408. 0: no limit.
    body_timeout_seconds: float = 30.0
    body_min_rate: int = 64 * 1024
    #: Let webhooks and connectors reach loopback, private and link-local addresses
    #: (GATEWAY_ALLOW_PRIVATE_ADDRESSES, or the older GATEWAY_WEBHOOK_ALLOW_PRIVATE): tests only.
    webhook_allow_private: bool = False
    #: Database connections per process: kept open, opened beyond that under load, and how
    #: long a request waits for one before it is answered 503 / UNAVAILABLE.
    db_pool_size: int = 10
    db_max_overflow: int = 20
    db_pool_timeout: float = 5.0
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
    #: Failed client authentications a minute from one address for one client id, and from
    #: one address for any client ids, before that pair or that address gets 429.
    auth_failures_per_minute: int = 5
    auth_failures_per_address_per_minute: int = 20

    # Where the limit counters live (docs/operations.md, "Running several workers or
    # replicas: Redis"): Redis when set, shared by every process; else this process.
    redis_url: str = ""
    redis_key_prefix: str = "mileage-gateway"
    #: A concurrency slot of a worker that died is freed after this many seconds.
    concurrency_slot_ttl_seconds: int = 300

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def development(self) -> bool:
        return self.env == "development"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
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
            secret_key=SecretKey(
                env.get("GATEWAY_SECRET_KEY") or _local_secret(url),
                previous=[k for k in (env.get("GATEWAY_OLD_SECRET_KEYS") or "").replace(",", " ").split() if k],
            ),
            access_token_ttl=min(_int(env, "GATEWAY_ACCESS_TOKEN_TTL", 900), 900),
            signing_key_rotation_days=_int(env, "GATEWAY_SIGNING_KEY_ROTATION_DAYS", 30),
            max_depth=_int(env, "GATEWAY_MAX_DEPTH", 12),
            max_aliases=_int(env, "GATEWAY_MAX_ALIASES", 30),
            max_tokens=_int(env, "GATEWAY_MAX_TOKENS", 5000),
            max_fields=_int(env, "GATEWAY_MAX_FIELDS", 2000),
            max_query_cost=_int(env, "GATEWAY_MAX_QUERY_COST", 10_000),
            max_page_size=_int(env, "GATEWAY_MAX_PAGE_SIZE", 500),
            max_batch=_int(env, "GATEWAY_MAX_BATCH", 10),
            max_body_bytes=_int(env, "GATEWAY_MAX_BODY_BYTES", 1024 * 1024),
            batching=_bool(env.get("GATEWAY_BATCHING"), False),
            persisted_query_max_bytes=_int(env, "GATEWAY_PERSISTED_QUERY_MAX_BYTES", 32 * 1024),
            persisted_queries_per_partner=_int(env, "GATEWAY_PERSISTED_QUERIES_PER_PARTNER", 1000),
            persisted_query_touch_seconds=_int(env, "GATEWAY_PERSISTED_QUERY_TOUCH_SECONDS", 60),
            debug_errors=_bool(env.get("GATEWAY_DEBUG_ERRORS"), False),
            rate_per_second=float(env.get("GATEWAY_RATE_PER_SECOND") or 50),
            rate_burst=_int(env, "GATEWAY_RATE_BURST", 100),
            max_concurrent=_int(env, "GATEWAY_MAX_CONCURRENT", 40),
            activity_backdate_days=_int(env, "GATEWAY_ACTIVITY_BACKDATE_DAYS", 400),
            hold_ttl_seconds=_int(env, "GATEWAY_HOLD_TTL_SECONDS", 15 * 60),
            payment_code_ttl_seconds=_int(env, "GATEWAY_PAYMENT_CODE_TTL_SECONDS", 180),
            receive_code_ttl_seconds=_int(env, "GATEWAY_RECEIVE_CODE_TTL_SECONDS", 600),
            document_url_ttl_seconds=_int(env, "GATEWAY_DOCUMENT_URL_TTL_SECONDS", 3600),
            reconciliation_max_records=_int(env, "GATEWAY_RECONCILIATION_MAX_RECORDS", 10_000_000),
            upload_max_bytes=_int(env, "GATEWAY_UPLOAD_MAX_BYTES", 1024**3),
            upload_max_decompressed_bytes=_int(env, "GATEWAY_UPLOAD_MAX_DECOMPRESSED_BYTES", 1024**3),
            upload_max_compression_ratio=_int(env, "GATEWAY_UPLOAD_MAX_COMPRESSION_RATIO", 100),
            body_timeout_seconds=float(env.get("GATEWAY_BODY_TIMEOUT_SECONDS") or 30),
            body_min_rate=_int(env, "GATEWAY_BODY_MIN_RATE", 64 * 1024),
            webhook_allow_private=_bool(
                env.get("GATEWAY_ALLOW_PRIVATE_ADDRESSES") or env.get("GATEWAY_WEBHOOK_ALLOW_PRIVATE"), False
            ),
            db_pool_size=_int(env, "GATEWAY_DB_POOL_SIZE", 10),
            db_max_overflow=_int(env, "GATEWAY_DB_MAX_OVERFLOW", 20),
            db_pool_timeout=float(env.get("GATEWAY_DB_POOL_TIMEOUT") or 5),
            scheduler=_bool(env.get("GATEWAY_SCHEDULER"), True),
            webhook_retry_schedule=tuple(
                float(x)
                for x in (
                    env.get("GATEWAY_WEBHOOK_RETRY_SCHEDULE") or "5,300,1800,7200,18000,36000,50400,72000,86400"
                ).split(",")
                if x.strip()
            ),
            webhook_timeout_seconds=float(env.get("GATEWAY_WEBHOOK_TIMEOUT_SECONDS") or 10),
            connector_failure_threshold=_int(env, "GATEWAY_CONNECTOR_FAILURE_THRESHOLD", 3),
            connector_cooldown_seconds=_int(env, "GATEWAY_CONNECTOR_COOLDOWN_SECONDS", 300),
            connector_run_timeout_seconds=_int(env, "GATEWAY_CONNECTOR_RUN_TIMEOUT_SECONDS", 600),
            token_rate_per_client=env.get("GATEWAY_TOKEN_RATE_PER_CLIENT") or "60/minute",
            token_rate_per_address=env.get("GATEWAY_TOKEN_RATE_PER_ADDRESS") or "600/minute",
            auth_failures_per_minute=_int(env, "GATEWAY_AUTH_FAILURES_PER_MINUTE", 5),
            auth_failures_per_address_per_minute=_int(env, "GATEWAY_AUTH_FAILURES_PER_ADDRESS_PER_MINUTE", 20),
            redis_url=env.get("GATEWAY_REDIS_URL") or "",
            redis_key_prefix=env.get("GATEWAY_REDIS_KEY_PREFIX") or "mileage-gateway",
            concurrency_slot_ttl_seconds=_int(env, "GATEWAY_CONCURRENCY_SLOT_TTL_SECONDS", 300),
        )
        values.update(overrides)
        if not values["secret_key"]:
            raise RuntimeError("GATEWAY_SECRET_KEY must be set when the database is not the embedded SQLite file")
        problem = weakness(values["secret_key"]) if values["env"] != "development" else None
        if problem:
            # A weak key falls to brute force from one signed document URL, and with it
            # every private key and credential sealed at rest.
            raise RuntimeError(
                f"GATEWAY_SECRET_KEY is too weak for GATEWAY_ENV={values['env']}: {problem}. It must hold at "
                "least 256 random bits: 43+ base64 characters or 64+ hex digits; "
                '`mileage-gateway secret-key` prints one (docs/operations.md, "Changing the secret key")'
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
