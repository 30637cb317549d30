"""Database engine, sessions and the column types every model shares.

Write transactions go through `Database.transaction()`. On SQLite it begins
with `BEGIN IMMEDIATE`, so writers serialize instead of failing on upgrade;
on PostgreSQL the services lock the rows they change.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: 64-bit ids on PostgreSQL; SQLite only autoincrements a plain INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class ExactDecimal(sa.TypeDecorator):
    """Decimals stored as text on SQLite (which has no exact numeric type)."""

    impl = sa.Numeric(20, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(20, 6))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(str(value)).normalize()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {
        int: sa.BigInteger(),
        dt.datetime: UTCDateTime(),
        Decimal: ExactDecimal(),
    }


class IdMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class GatewayPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio queue pool, counting who waits for a connection and how often
    the wait ran out (gateway/metrics.py shows both). A wait longer than `pool_timeout`
    raises sqlalchemy.exc.TimeoutError, which the faces answer 503 / UNAVAILABLE
    (schema/overload.py)."""

    waiting = 0
    timeouts = 0

    def connect(self):
        self.waiting += 1
        try:
            return super().connect()
        except sa.exc.TimeoutError:
            self.timeouts += 1
            raise
        finally:
            self.waiting -= 1


#: Defaults for every engine; the served app takes them from settings (`Database.from_settings`).
POOL_DEFAULTS = {"pool_size": 10, "max_overflow": 20, "pool_timeout": 5.0}


def make_engine(url: str, **kwargs) -> AsyncEngine:
    for name, value in POOL_DEFAULTS.items():
        kwargs.setdefault(name, value)
    if url.startswith("sqlite"):
        if ":memory:" in url or "mode=memory" in url:
            # One shared connection (StaticPool): pool options do not apply.
            for name in POOL_DEFAULTS:
                kwargs.pop(name, None)
        else:
            kwargs.setdefault("poolclass", GatewayPool)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _sqlite_pragmas(engine)
        return engine
    kwargs.setdefault("poolclass", GatewayPool)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


#: The databases whose pools /metrics shows (the served app's; `Database.from_settings`).
_WATCHED: weakref.WeakSet[Database] = weakref.WeakSet()


def pool_stats() -> dict[str, float]:
    """The connection pools of the watched databases, summed: size (kept open), checked out,
    overflow (open beyond the size), waiting (callers waiting for a connection), timeouts
    (waits that ran out, since start)."""
    stats = {"size": 0.0, "checked_out": 0.0, "overflow": 0.0, "waiting": 0.0, "timeouts": 0.0}
    for database in list(_WATCHED):
        pool = database.engine.sync_engine.pool
        if not isinstance(pool, QueuePool):
            continue
        stats["size"] += pool.size()
        stats["checked_out"] += pool.checkedout()
        stats["overflow"] += max(pool.overflow(), 0)
        stats["waiting"] += getattr(pool, "waiting", 0)
        stats["timeouts"] += getattr(pool, "timeouts", 0)
    return stats


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn):
        if conn.get_execution_options().get("gateway_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """The engine and the two ways of using it: a write transaction, a read session."""

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.dialect = self.engine.dialect.name
        writer = self.engine.execution_options(gateway_write=True)
        self._write = async_sessionmaker(writer, expire_on_commit=False)
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One atomic unit of work: committed on success, rolled back on any error."""
        async with self._write() as session:
            async with session.begin():
                yield session

    def session(self) -> AsyncSession:
        """A session for reads (GraphQL queries, DataLoaders)."""
        return self._read()

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True

    @classmethod
    def from_settings(cls, settings) -> Database:
        """The served app's database: pool sized by settings, shown in /metrics."""
        database = cls(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
        )
        _WATCHED.add(database)
        return database

    async def dispose(self) -> None:
        _WATCHED.discard(self)
        await self.engine.dispose()
