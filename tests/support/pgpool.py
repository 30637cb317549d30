"""Migrated PostgreSQL databases for tests: built once per pytest process, emptied between tests.

`CREATE DATABASE … TEMPLATE` and `DROP DATABASE` per test cost 0.15 s on a quiet machine and
close to a second on a loaded one (PostgreSQL copies the template through the WAL and syncs
it to disk). Emptying a database that a test filled with a few rows costs milliseconds, so
each pytest process (each xdist worker) keeps a few databases and resets one after each test:

- every connection still open to it is terminated (a server a test left behind, an engine
  it did not dispose), so nothing of the last test can write into the next one;
- every table but `alembic_version` is emptied (`DELETE` with foreign keys and triggers off:
  on tables of a few rows it is 100 times cheaper than `TRUNCATE`, which makes new files),
  the rows the migrations inserted are put back and every sequence is set back to where
  the migrations left it;
- the catalogue is compared with the template's: a test that changed the schema (renamed a
  table and failed before renaming it back) gets its database dropped and a fresh clone.

A database whose reset fails for any reason is dropped, never handed out again; the next
test gets a new clone.
Each database carries a comment naming host and pid, so that a later run drops the
leftovers of a run that was killed (and only those: a live run's databases stay).
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import uuid

import asyncpg

COMMENT_TAG = "mileage-gateway tests"

# One line per relation, trigger and constraint of the public schema: what a test could
# have changed with DDL. Cheap (a catalogue scan, ~1 ms for this schema).
FINGERPRINT_SQL = """
SELECT md5(coalesce(string_agg(item, ';' ORDER BY item), '')) FROM (
    SELECT c.relname::text || ':' || c.relkind::text || ':' || coalesce((
        SELECT string_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod)
                          || CASE WHEN a.attnotnull THEN ' nn' ELSE '' END, ',' ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') AS item
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
    UNION ALL
    SELECT 'trigger ' || t.tgrelid::regclass::text || '.' || t.tgname::text
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND NOT t.tgisinternal
    UNION ALL
    SELECT 'constraint ' || co.conname::text || ' ' || pg_get_constraintdef(co.oid)
    FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = 'public'
) AS items
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Baseline:
    """What a freshly migrated database holds, read once from the template."""

    def __init__(self, tables: list[str], seed: dict[str, bytes], sequences_sql: str, fingerprint: str) -> None:
        self.tables = tables
        self.seed = seed
        self.sequences_sql = sequences_sql
        self.fingerprint = fingerprint

    @classmethod
    async def read(cls, conn: asyncpg.Connection) -> Baseline:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                " ORDER BY tablename"
            )
        ]
        seed: dict[str, bytes] = {}
        for table in tables:
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM public.{_quote(table)})"):
                buffer = io.BytesIO()
                await conn.copy_from_table(table, schema_name="public", output=buffer, format="binary")
                seed[table] = buffer.getvalue()
        setvals = [
            f"setval({_literal('public.' + _quote(r['sequencename']))}::regclass, {r['value']}, {r['called']})"
            for r in await conn.fetch(
                "SELECT sequencename, coalesce(last_value, start_value) AS value, last_value IS NOT NULL AS called"
                " FROM pg_sequences WHERE schemaname = 'public'"
            )
        ]
        sequences_sql = f"SELECT {', '.join(setvals)}" if setvals else ""
        return cls(tables, seed, sequences_sql, await conn.fetchval(FINGERPRINT_SQL))


class PgDatabases:
    """The databases of one pytest process: a migrated template, its clones, a pool of reusable ones."""

    def __init__(self, admin_dsn: str, url_base: str, prefix: str, build_schema) -> None:
        self.admin_dsn = admin_dsn
        self.url_base = url_base  # postgresql+asyncpg://user@host:port
        self.prefix = prefix
        self.build_schema = build_schema  # async (sqlalchemy url) -> None
        self.template: str | None = None
        self.template_error: str | None = None
        self.baseline: Baseline | None = None
        self.free: list[str] = []
        self.owned: set[str] = set()  # every database this process created and has not dropped
        self.comment = f"{COMMENT_TAG}: host={socket.gethostname()} pid={os.getpid()}"

    # ------------------------------------------------------------ plumbing

    def _dsn(self, name: str) -> str:
        return self.admin_dsn.rsplit("/", 1)[0] + "/" + name

    def url(self, name: str) -> str:
        return f"{self.url_base}/{name}"

    @staticmethod
    def name_of(url: str) -> str:
        return url.rsplit("/", 1)[1]

    async def _admin(self, *statements: str) -> None:
        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    def _run(self, coro):
        return asyncio.run(coro)

    # ------------------------------------------------------------ lifecycle

    def ensure_template(self) -> str:
        if self.template is not None:
            return self.template
        if self.template_error is not None:  # fail every test fast with the first cause
            raise RuntimeError(f"the PostgreSQL template could not be built: {self.template_error}")
        name = f"{self.prefix}_tpl"
        try:
            self._run(self._drop_stale())
            self._create(f"CREATE DATABASE {_quote(name)}", name)
            self._run(self.build_schema(self.url(name)))
            self.baseline = self._run(self._read_baseline(name))
        except BaseException as exc:
            self.template_error = f"{type(exc).__name__}: {exc}"
            try:
                self.drop(name)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        self.template = name
        return name

    async def _read_baseline(self, name: str) -> Baseline:
        conn = await asyncpg.connect(self._dsn(name), timeout=10)
        try:
            return await Baseline.read(conn)
        finally:
            await conn.close()

    def _create(self, sql: str, name: str) -> None:
        self.owned.add(name)
        self._run(self._admin(sql, f"COMMENT ON DATABASE {_quote(name)} IS {_literal(self.comment)}"))

    def clone(self) -> str:
        """URL of a new database cloned from the template; the caller drops it (`drop`)."""
        template = self.ensure_template()
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        self._create(f"CREATE DATABASE {_quote(name)} TEMPLATE {_quote(template)}", name)
        return self.url(name)

    def drop(self, name: str) -> None:
        self._run(self._admin(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)"))
        self.owned.discard(name)

    def acquire(self) -> str:
        """URL of an empty migrated database of the pool; give it back with `release`."""
        if self.free:
            return self.url(self.free.pop())
        return self.clone()

    def release(self, url: str) -> None:
        """Empty the database for the next test, or drop it if it cannot be made as new.

        A test may break its own database (rename a table to make the gateway fail): that
        is no error of the test's, the database just goes."""
        name = self.name_of(url)
        try:
            self._run(self._reset(name))
        except Exception:  # noqa: BLE001 - whatever went wrong, this database is not handed out again
            self.drop(name)
            return
        self.free.append(name)

    def close(self) -> None:
        for name in sorted(self.owned, key=lambda n: n == self.template):  # the template last
            self.drop(name)
        self.free.clear()

    # ------------------------------------------------------------ reset

    async def _reset(self, name: str) -> None:
        assert self.baseline is not None
        base = self.baseline
        conn = await asyncpg.connect(self._dsn(name), timeout=10)
        try:
            # Whatever the test left connected goes first: its locks would block the reset,
            # and its writes must not land in the next test. The timeout waits for the exit.
            await conn.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await conn.execute("SET lock_timeout = '10s'")
            async with conn.transaction():
                # replica: no foreign-key checks or user triggers while emptying and refilling.
                # No WAL flush to wait for at commit: a test database need not survive a crash.
                await conn.execute("SET LOCAL session_replication_role = replica; SET LOCAL synchronous_commit = off")
                if base.tables:
                    await conn.execute("; ".join(f"DELETE FROM public.{_quote(t)}" for t in base.tables))
                for table, rows in base.seed.items():
                    await conn.copy_to_table(table, schema_name="public", source=io.BytesIO(rows), format="binary")
                if base.sequences_sql:
                    await conn.execute(base.sequences_sql)
            fingerprint = await conn.fetchval(FINGERPRINT_SQL)
        finally:
            await conn.close()
        if fingerprint != base.fingerprint:
            raise RuntimeError(f"the test changed the schema of {name}")

    # ------------------------------------------------------------ leftovers of killed runs

    async def _drop_stale(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT datname, shobj_description(oid, 'pg_database') AS comment FROM pg_database"
                " WHERE shobj_description(oid, 'pg_database') LIKE $1",
                f"{COMMENT_TAG}: host={socket.gethostname()} pid=%",
            )
            for row in rows:
                pid = row["comment"].rsplit("pid=", 1)[1]
                if pid.isdigit() and not _alive(int(pid)):
                    await conn.execute(f"DROP DATABASE IF EXISTS {_quote(row['datname'])} WITH (FORCE)")
        finally:
            await conn.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
