"""Reconciliation: an operator's records of a period, matched against the gateway's flows.

What a caller may rely on
-------------------------
* A **run** compares the records one operator (party to the agreement) kept of a period
  (`ReportRecord`: reference, kind, amountWon, occurredAt) with the gateway's
  `SettlementFlow`s of that agreement dated (Asia/Seoul) from `period_start` to `period_end`.
* **Staging**: `stage_report` takes the records as an async iterator and writes them to the
  staging table in batches (`batch_size`, one short transaction each), so a report of
  millions of records never sits in memory and never holds the database for long.
  `stage_records` does the same inside the caller's transaction (small reports).
* **Matching** (`run_matching`) is set-based SQL, one statement: no side is ever loaded into
  Python. Per key (reference, kind): partner records and gateway flows with the same amount
  are paired first (exact matches); what is left on each side is paired in time order, and
  each such pair is an AMOUNT_MISMATCH (partner `amountWon` against the flow's `gross_won`).
  A partner record left over is MISSING_IN_GATEWAY when the gateway has no flow of that key
  in the period and it is the key's first record; otherwise it is a DUPLICATE (the partner
  reported the reference more often than the movement happened). A gateway flow left over
  is MISSING_AT_PARTNER. So `partner_records = matched + missing_in_gateway +
  amount_mismatch + duplicates`. (A redemption's capture and its partial refunds share one
  reference, hence the kind in the key and the pairing rather than a plain join.)
* **Runs** are RUNNING while staged and matched, then COMPLETED with counts (or FAILED with
  an error); `reconciliation.completed` goes to both operators of the agreement either way.
  `start_matching` runs the matching as a background task after staging.
* **Discrepancies** are resolved one by one with a note (`resolve_discrepancy`).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import datetime as dt
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import Database, utcnow
from gateway.errors import InvalidInput, InvalidState, LimitExceeded, NotFound
from gateway.ids import encode_id
from gateway.models.partners import Agreement, Partner
from gateway.models.settlement import (
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    FlowKind,
    ReconciliationRun,
    ReconciliationStatus,
    SettlementFlow,
    StagedRecord,
)
from gateway.outbox import emit
from gateway.settlement import seoul_midnight
from gateway.untrusted import UNSTORABLE, UntrustedInput, loads, storable, whole_number

log = logging.getLogger(__name__)

REFERENCE_MAX = 100
RESOLUTION_MAX = 2000
DEFAULT_BATCH_SIZE = 5000
MAX_LINE = 64 * 1024
#: The instants a record may carry: far enough either way for any book, near enough that
#: converting to UTC cannot overflow.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
#: Columns of a CSV report (header row required, in any order) and keys of a JSON line.
FIELDS = ("reference", "kind", "amountWon", "occurredAt")


@dataclass(frozen=True)
class ReportRecord:
    reference: str
    kind: FlowKind
    amount_won: int
    occurred_at: dt.datetime


# ---------------------------------------------------------------- records


def check_record(record: ReportRecord, where: str | int) -> ReportRecord:
    """The record, validated; `where` names it in errors ("line 12", "records[3]", or the
    record's number). Any object with the four attributes will do; a `ReportRecord` is returned."""
    reference, kind, amount, occurred_at = record.reference, record.kind, record.amount_won, record.occurred_at
    if not isinstance(reference, str) or not 0 < len(reference) <= REFERENCE_MAX or not reference.strip():
        raise InvalidInput(f"{_where(where)}: reference must be 1 to {REFERENCE_MAX} characters")
    if not storable(reference):
        raise InvalidInput(f"{_where(where)}: reference {UNSTORABLE}")
    if type(amount) is not int or not 0 <= amount < 2**63:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise InvalidInput(f"{_where(where)}: amountWon must be a whole number of won, not negative")
        if amount >= 2**63:
            raise InvalidInput(f"{_where(where)}: amountWon is too large")
    if not isinstance(occurred_at, dt.datetime) or occurred_at.tzinfo is None:
        raise InvalidInput(f"{_where(where)}: occurredAt must be an ISO 8601 instant with a UTC offset")
    if not EARLIEST <= occurred_at <= LATEST:
        # The drivers convert to UTC: 0001-01-01T00:00+09:00 would overflow there.
        raise InvalidInput(f"{_where(where)}: occurredAt must be between {EARLIEST.year} and {LATEST.year}")
    if type(record) is ReportRecord and type(kind) is FlowKind and reference[0] > " " and reference[-1] > " ":
        return record  # already clean: no copy (the common case, millions of times)
    try:
        kind = FlowKind(kind)
    except ValueError:
        raise InvalidInput(f"{_where(where)}: kind must be one of {', '.join(k.value for k in FlowKind)}") from None
    return ReportRecord(reference.strip(), kind, int(amount), occurred_at)


def _where(where: str | int) -> str:
    return f"record {where}" if isinstance(where, int) else where


def parse_record(values: dict, where: str) -> ReportRecord:
    """A record from the strings (CSV) or JSON values of one line."""
    missing = [name for name in FIELDS if values.get(name) in (None, "")]
    if missing:
        raise InvalidInput(f"{where}: missing {', '.join(missing)}")
    try:
        kind = FlowKind(str(values["kind"]).strip())
    except ValueError:
        raise InvalidInput(f"{where}: kind must be one of {', '.join(k.value for k in FlowKind)}") from None
    amount = values["amountWon"]
    if isinstance(amount, str) and amount.strip().isascii() and amount.strip().isdigit():
        # Digits are counted before int(): Python refuses over 4,300 of them with a ValueError.
        amount = whole_number(amount)
        if amount is None:
            raise InvalidInput(f"{where}: amountWon is too large")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput(f"{where}: amountWon must be a whole number of won")
    try:
        occurred_at = dt.datetime.fromisoformat(str(values["occurredAt"]).strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{where}: occurredAt must be an ISO 8601 instant with a UTC offset") from None
    return check_record(ReportRecord(str(values["reference"]), kind, amount, occurred_at), where)


async def iter_lines(chunks: AsyncIterable[bytes], *, max_line: int = MAX_LINE) -> AsyncIterator[str]:
    """UTF-8 text lines of a byte stream, without their line ends (a BOM is dropped). A line
    longer than `max_line` characters is refused, so a body without line breaks cannot fill
    memory."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    number = 0
    async for chunk in chunks:
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        for line in lines:
            number += 1
            yield line.rstrip("\r")
        if len(pending) > max_line:
            raise InvalidInput(f"line {number + 1}: longer than {max_line} characters")
        # One chunk's lines at a time, then the event loop's turn: a chunk of blank lines
        # costs no I/O, and a body of millions of them must not hold the process.
        await asyncio.sleep(0)
    pending += decoder.decode(b"", final=True)
    if pending.rstrip("\r"):
        yield pending.rstrip("\r")


async def parse_csv(lines: AsyncIterable[str]) -> AsyncIterator[ReportRecord]:
    """Records of a CSV report: a header row naming reference, kind, amountWon, occurredAt."""
    header: list[str] | None = None
    number = 0
    async for line in lines:
        number += 1
        if not line.strip():
            continue
        try:
            row = next(csv.reader([line]))
        except csv.Error as exc:
            raise InvalidInput(f"line {number}: not a CSV row ({exc})") from None
        if header is None:
            header = [name.strip() for name in row]
            missing = [name for name in FIELDS if name not in header]
            if missing:
                raise InvalidInput(f"line 1: the header row lacks {', '.join(missing)}")
            continue
        if len(row) != len(header):
            raise InvalidInput(f"line {number}: {len(row)} fields where the header has {len(header)}")
        yield parse_record(dict(zip(header, row)), f"line {number}")


async def parse_ndjson(lines: AsyncIterable[str]) -> AsyncIterator[ReportRecord]:
    """Records of a JSON-lines report: one object per line with the same four keys."""
    number = 0
    async for line in lines:
        number += 1
        if not line.strip():
            continue
        try:
            values = loads(line)
        except UntrustedInput as exc:
            raise InvalidInput(f"line {number}: not a JSON object ({exc})") from None
        if not isinstance(values, dict):
            raise InvalidInput(f"line {number}: not a JSON object")
        yield parse_record(values, f"line {number}")


# ---------------------------------------------------------------- runs and staging


async def _party_agreement(session: AsyncSession, agreement_id: int, partner_id: int) -> Agreement:
    agreement = await session.get(Agreement, agreement_id)
    if agreement is None or partner_id not in (agreement.operator_a_id, agreement.operator_b_id):
        raise NotFound("No agreement with this code", field=["input", "agreementCode"])
    return agreement


async def create_run(
    *,
    session: AsyncSession,
    agreement_id: int,
    partner_id: int,
    period_start: dt.date,
    period_end: dt.date,
    now: dt.datetime | None = None,
) -> ReconciliationRun:
    """A RUNNING run for `partner_id`'s report; the partner must be party to the agreement."""
    await _party_agreement(session, agreement_id, partner_id)
    if period_end < period_start:
        raise InvalidInput("periodEnd must not be before periodStart", field=["input", "periodEnd"])
    run = ReconciliationRun(
        agreement_id=agreement_id,
        partner_id=partner_id,
        period_start=period_start,
        period_end=period_end,
        status=ReconciliationStatus.RUNNING,
        started_at=now or utcnow(),
    )
    session.add(run)
    await session.flush()
    return run


async def _insert_batch(
    session: AsyncSession, run_id: int, first_seq: int, batch: list[ReportRecord], *, durable: bool = True
) -> None:
    if session.bind.dialect.name == "postgresql":
        if not durable:
            # A staging batch need not wait for its own WAL flush: the run is marked staged by
            # a later, synchronous commit, which flushes every earlier one with it.
            await session.execute(sa.text("SET LOCAL synchronous_commit = off"))
        # COPY: the fastest way into PostgreSQL, inside the session's transaction.
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(
            StagedRecord.__tablename__,
            columns=["run_id", "seq", "reference", "kind", "amount_won", "occurred_at"],
            records=[
                (run_id, first_seq + i, r.reference, r.kind.value, r.amount_won, r.occurred_at)
                for i, r in enumerate(batch)
            ],
        )
        return
    await session.execute(
        sa.insert(StagedRecord),
        [
            dict(
                run_id=run_id,
                seq=first_seq + i,
                reference=r.reference,
                kind=r.kind,
                amount_won=r.amount_won,
                occurred_at=r.occurred_at,
            )
            for i, r in enumerate(batch)
        ],
    )


async def stage_records(
    *, session: AsyncSession, run: ReconciliationRun, records: Iterable[ReportRecord], now: dt.datetime | None = None
) -> ReconciliationRun:
    """Stage a small report inside the caller's transaction and mark the run staged."""
    checked = [check_record(r, f"records[{i}]") for i, r in enumerate(records)]
    for start in range(0, len(checked), DEFAULT_BATCH_SIZE):
        await _insert_batch(session, run.id, start + 1, checked[start : start + DEFAULT_BATCH_SIZE])
    run.partner_records = len(checked)
    run.staged_at = now or utcnow()
    await session.flush()
    return run


async def stage_report(
    *,
    db: Database,
    agreement_id: int,
    partner_id: int,
    period_start: dt.date,
    period_end: dt.date,
    records: AsyncIterable[ReportRecord],
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_records: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Create a run and stream `records` into staging, `batch_size` at a time, each batch in
    its own transaction. Returns the run id, staged and ready for `run_matching` (or
    `start_matching`). A bad record or a failing source marks the run FAILED and raises
    (InvalidInput naming the record, LimitExceeded past `max_records`, or the source's error)."""
    async with db.transaction() as session:
        run = await create_run(
            session=session,
            agreement_id=agreement_id,
            partner_id=partner_id,
            period_start=period_start,
            period_end=period_end,
            now=now,
        )
        run_id = run.id
    count = 0
    batch: list[ReportRecord] = []
    # One batch is written while the next is read and checked: at most two in memory.
    writing: asyncio.Task | None = None

    async def write(first_seq: int, rows: list[ReportRecord]) -> None:
        async with db.transaction() as session:
            await _insert_batch(session, run_id, first_seq, rows, durable=False)

    try:
        async for record in records:
            count += 1
            if max_records is not None and count > max_records:
                raise LimitExceeded(f"A report may hold at most {max_records} records")
            batch.append(check_record(record, count))
            if len(batch) >= batch_size:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(write(count - len(batch) + 1, batch))
                batch = []
        if writing is not None:
            await writing
            writing = None
        async with db.transaction() as session:
            if batch:
                await _insert_batch(session, run_id, count - len(batch) + 1, batch)
            await session.execute(
                sa.update(ReconciliationRun)
                .where(ReconciliationRun.id == run_id)
                .values(partner_records=count, staged_at=utcnow())
            )
    except BaseException as exc:
        if writing is not None and not writing.done():
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
        message = getattr(exc, "message", None) or f"the report could not be read ({type(exc).__name__})"
        await _fail(db, run_id, message, discard_records=True)
        raise
    return run_id


async def _fail(db: Database, run_id: int, message: str, *, discard_records: bool = False) -> None:
    try:
        async with db.transaction() as session:
            run = await session.get(ReconciliationRun, run_id)
            if discard_records:
                await session.execute(sa.delete(StagedRecord).where(StagedRecord.run_id == run_id))
            await session.execute(sa.delete(Discrepancy).where(Discrepancy.run_id == run_id))
            run.status = ReconciliationStatus.FAILED
            run.error = message[:2000]
            run.finished_at = utcnow()
            await session.flush()
            await _emit_completed(session, run)
    except Exception:  # noqa: BLE001 - the original error matters more
        log.exception("could not mark reconciliation run %s failed", run_id)


# ---------------------------------------------------------------- matching


def _outer_join(left, right, on, *, full: bool, left_key, columns):
    """`SELECT columns FROM left FULL OUTER JOIN right ON on`; or the same rows as a LEFT JOIN
    and the right rows without a partner (for SQLite, whose planner handles that better)."""
    if full:
        return sa.select(*columns).select_from(left.join(right, on, full=True))
    return sa.union_all(
        sa.select(*columns).select_from(left.outerjoin(right, on)),
        sa.select(*columns).select_from(right.outerjoin(left, on)).where(left_key.is_(None)),
    )


def _unpaired(left, right, on, *, full: bool, left_columns, right_columns, left_key, right_key):
    """The rows of `left` without a partner in `right` and those of `right` without one in
    `left`, in one result whose other side's columns are null: a FULL OUTER JOIN that keeps
    the unpaired rows, or (full=False) two anti-joins."""
    if full:
        return (
            sa.select(*left_columns, *right_columns)
            .select_from(left.join(right, on, full=True))
            .where(sa.or_(left_key.is_(None), right_key.is_(None)))
        )
    nulls = lambda columns: [sa.null().cast(c.type).label(c.name) for c in columns]  # noqa: E731
    return sa.union_all(
        sa.select(*left_columns, *nulls(right_columns))
        .select_from(left)
        .where(~sa.exists(sa.select(1).select_from(right).where(on))),
        sa.select(*nulls(left_columns), *right_columns)
        .select_from(right)
        .where(~sa.exists(sa.select(1).select_from(left).where(on))),
    )


def _matching_select(run: ReconciliationRun, *, full_join: bool = True) -> sa.Select:
    """One SELECT yielding every discrepancy of the run (see the module docstring).

    p, g: the partner's records and the gateway's flows, numbered within (reference, kind,
    amount). e: what pairing them on (reference, kind, amount, number) leaves unpaired (the
    exact matches drop out here). pl, gl: those leftovers numbered within (reference, kind)
    in time order; an outer join of the two on (reference, kind, number) classifies each.
    With `full_join` (PostgreSQL) p and g are read once each, so they are inlined and joined
    straight from their window sorts; only the leftovers are materialized.
    """
    R, F = StagedRecord.__table__, SettlementFlow.__table__
    row_number, count = sa.func.row_number, sa.func.count
    p = (
        sa.select(
            R.c.seq,
            R.c.reference,
            R.c.kind,
            R.c.amount_won.label("amount"),
            R.c.occurred_at,
            row_number()
            .over(partition_by=(R.c.reference, R.c.kind, R.c.amount_won), order_by=(R.c.occurred_at, R.c.seq))
            .label("k"),
            count().over(partition_by=(R.c.reference, R.c.kind)).label("n_key"),
        )
        .where(R.c.run_id == run.id)
        .cte("p")
    )
    g = (
        sa.select(
            F.c.id,
            F.c.reference,
            F.c.kind,
            F.c.gross_won.label("amount"),
            F.c.occurred_at,
            row_number()
            .over(partition_by=(F.c.reference, F.c.kind, F.c.gross_won), order_by=(F.c.occurred_at, F.c.id))
            .label("k"),
        )
        .where(
            F.c.agreement_id == run.agreement_id,
            F.c.occurred_at >= seoul_midnight(run.period_start),
            F.c.occurred_at < seoul_midnight(run.period_end + dt.timedelta(days=1)),
        )
        .cte("g")
    )
    exact = sa.and_(g.c.reference == p.c.reference, g.c.kind == p.c.kind, g.c.amount == p.c.amount, g.c.k == p.c.k)
    unpaired = _unpaired(
        p,
        g,
        exact,
        full=full_join,
        left_key=p.c.seq,
        right_key=g.c.id,
        left_columns=[
            p.c.seq,
            p.c.reference.label("p_reference"),
            p.c.kind.label("p_kind"),
            p.c.amount.label("p_amount"),
            p.c.occurred_at.label("p_at"),
            p.c.n_key,
        ],
        right_columns=[
            g.c.id,
            g.c.reference.label("g_reference"),
            g.c.kind.label("g_kind"),
            g.c.amount.label("g_amount"),
            g.c.occurred_at.label("g_at"),
        ],
    )
    e = unpaired.cte("e")
    pl = (
        sa.select(
            e.c.seq,
            e.c.p_reference.label("reference"),
            e.c.p_kind.label("kind"),
            e.c.p_amount.label("amount"),
            e.c.n_key,
            row_number().over(partition_by=(e.c.p_reference, e.c.p_kind), order_by=(e.c.p_at, e.c.seq)).label("j"),
            count().over(partition_by=(e.c.p_reference, e.c.p_kind)).label("n_left"),
        )
        .where(e.c.seq.is_not(None))
        .cte("pl")
    )
    gl = (
        sa.select(
            e.c.id,
            e.c.g_reference.label("reference"),
            e.c.g_kind.label("kind"),
            e.c.g_amount.label("amount"),
            row_number().over(partition_by=(e.c.g_reference, e.c.g_kind), order_by=(e.c.g_at, e.c.id)).label("j"),
        )
        .where(e.c.id.is_not(None))
        .cte("gl")
    )
    pair = sa.and_(gl.c.reference == pl.c.reference, gl.c.kind == pl.c.kind, gl.c.j == pl.c.j)
    kind = sa.case(
        (pl.c.seq.is_(None), DiscrepancyKind.MISSING_AT_PARTNER.value),
        (gl.c.id.is_not(None), DiscrepancyKind.AMOUNT_MISMATCH.value),
        # Unpaired, and the key had no exact match either: the gateway has no such flow.
        (sa.and_(pl.c.j == 1, pl.c.n_key == pl.c.n_left), DiscrepancyKind.MISSING_IN_GATEWAY.value),
        else_=DiscrepancyKind.DUPLICATE.value,
    )
    return _outer_join(
        pl,
        gl,
        pair,
        full=full_join,
        left_key=pl.c.seq,
        columns=[
            sa.literal(run.id, sa.BigInteger),
            sa.func.coalesce(pl.c.reference, gl.c.reference),
            kind,
            sa.func.coalesce(pl.c.kind, gl.c.kind),
            gl.c.amount,
            pl.c.amount,
            gl.c.id,
            pl.c.seq,
            sa.literal(DiscrepancyStatus.OPEN.value),
        ],
    )


async def run_matching(*, db: Database, run_id: int, rerun: bool = False) -> ReconciliationRun:
    """Match a staged run and complete it (counts, discrepancies, the event) in one
    transaction; on failure the run is FAILED. A run no longer RUNNING is returned as it is,
    unless `rerun`, which matches it again from scratch."""
    try:
        async with db.transaction() as session:
            run = (
                await session.execute(
                    sa.select(ReconciliationRun)
                    .where(ReconciliationRun.id == run_id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            ).scalar_one()
            if run.status != ReconciliationStatus.RUNNING and not rerun:
                return run
            if run.staged_at is None:
                raise InvalidState("the run's report is not staged yet")
            if session.bind.dialect.name == "postgresql":
                # One big set-based statement: JIT compilation would cost more than it saves.
                await session.execute(sa.text("SET LOCAL jit = off"))
            await session.execute(sa.delete(Discrepancy).where(Discrepancy.run_id == run.id))
            columns = [
                "run_id",
                "reference",
                "kind",
                "flow_kind",
                "gateway_amount_won",
                "partner_amount_won",
                "flow_id",
                "record_seq",
                "status",
            ]
            await session.execute(
                sa.insert(Discrepancy.__table__).from_select(
                    columns, _matching_select(run, full_join=_use_full_join(session))
                )
            )
            counts = dict(
                (
                    await session.execute(
                        sa.select(Discrepancy.kind, sa.func.count())
                        .where(Discrepancy.run_id == run.id)
                        .group_by(Discrepancy.kind)
                    )
                ).all()
            )
            count = lambda kind: int(counts.get(kind, counts.get(kind.value, 0)))  # noqa: E731
            run.missing_in_gateway = count(DiscrepancyKind.MISSING_IN_GATEWAY)
            run.missing_at_partner = count(DiscrepancyKind.MISSING_AT_PARTNER)
            run.amount_mismatch = count(DiscrepancyKind.AMOUNT_MISMATCH)
            run.duplicates = count(DiscrepancyKind.DUPLICATE)
            run.matched = run.partner_records - run.missing_in_gateway - run.amount_mismatch - run.duplicates
            run.status = ReconciliationStatus.COMPLETED
            run.error = None
            run.finished_at = utcnow()
            await session.flush()
            await _emit_completed(session, run)
            return run
    except Exception as exc:
        log.exception("reconciliation run %s failed", run_id)
        await _fail(db, run_id, f"matching failed: {getattr(exc, 'message', None) or type(exc).__name__}")
        async with db.session() as session:
            return await session.get(ReconciliationRun, run_id)


def _use_full_join(session: AsyncSession) -> bool:
    """PostgreSQL merge- or hash-joins a FULL OUTER JOIN of the two sorted sides in one pass;
    SQLite (which has it only since 3.39) runs it as nested loops, but indexes the anti-joins'
    subqueries on the fly."""
    return session.bind.dialect.name != "sqlite"


_tasks: dict[int, asyncio.Task] = {}


def start_matching(*, db: Database, run_id: int) -> asyncio.Task:
    """Run `run_matching` in the background (the caller returns the RUNNING run at once)."""
    task = asyncio.get_running_loop().create_task(run_matching(db=db, run_id=run_id), name=f"reconciliation-{run_id}")
    _tasks[run_id] = task
    task.add_done_callback(lambda _t: _tasks.pop(run_id, None))
    return task


async def finish_pending(timeout: float = 30.0) -> None:
    """Give this process's background matchings up to `timeout` seconds to finish (at
    shutdown); any still running is left RUNNING for `recover_runs`."""
    tasks = list(_tasks.values())
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


async def wait_for(run_id: int) -> None:
    """Wait until this process's background matching of the run (if any) has finished."""
    task = _tasks.get(run_id)
    if task is not None:
        await asyncio.shield(task)


async def recover_runs(
    *, db: Database, now: dt.datetime | None = None, stale_after: dt.timedelta = dt.timedelta(minutes=30)
) -> list[int]:
    """For the scheduler: runs left RUNNING (for longer than `stale_after`) by a stopped
    process. A staged run is matched again; a run whose upload never finished is FAILED."""
    now = now or utcnow()
    async with db.session() as session:
        rows = (
            await session.execute(
                sa.select(ReconciliationRun.id, ReconciliationRun.staged_at, ReconciliationRun.started_at).where(
                    ReconciliationRun.status == ReconciliationStatus.RUNNING
                )
            )
        ).all()
    handled = []
    for run_id, staged_at, started_at in rows:
        if run_id in _tasks:
            continue
        if staged_at is not None and staged_at <= now - stale_after:
            await run_matching(db=db, run_id=run_id)
            handled.append(run_id)
        elif staged_at is None and started_at <= now - stale_after:
            await _fail(db, run_id, "the report's upload did not finish", discard_records=True)
            handled.append(run_id)
    return handled


async def _emit_completed(session: AsyncSession, run: ReconciliationRun) -> None:
    agreement = await session.get(Agreement, run.agreement_id)
    partner = await session.get(Partner, run.partner_id)
    await emit(
        session=session,
        type="reconciliation.completed",
        partner_ids=[agreement.operator_a_id, agreement.operator_b_id],
        data={
            "id": encode_id("ReconciliationRun", run.id),
            "agreement": agreement.code,
            "partner": partner.code,
            "periodStart": run.period_start.isoformat(),
            "periodEnd": run.period_end.isoformat(),
            "status": ReconciliationStatus(run.status).value,
            "partnerRecords": str(run.partner_records),
            "matched": str(run.matched),
            "missingInGateway": str(run.missing_in_gateway),
            "missingAtPartner": str(run.missing_at_partner),
            "amountMismatch": str(run.amount_mismatch),
            "duplicates": str(run.duplicates),
            "error": run.error,
        },
    )


# ---------------------------------------------------------------- reading and resolving


async def get_run(session: AsyncSession, run_id: int, *, partner_id: int | None) -> tuple[ReconciliationRun, Agreement]:
    """The run if `partner_id` (None = ADMIN) is party to its agreement; NotFound otherwise."""
    run = await session.get(ReconciliationRun, run_id)
    agreement = await session.get(Agreement, run.agreement_id) if run else None
    if run is None or (partner_id is not None and partner_id not in (agreement.operator_a_id, agreement.operator_b_id)):
        raise NotFound("No reconciliation run with this id")
    return run, agreement


def discrepancies_query(run_id: int, kind: DiscrepancyKind | None = None) -> sa.Select:
    stmt = sa.select(Discrepancy).where(Discrepancy.run_id == run_id)
    if kind is not None:
        stmt = stmt.where(Discrepancy.kind == kind)
    return stmt


async def get_discrepancy(
    session: AsyncSession, discrepancy_id: int, *, partner_id: int | None, lock: bool = False
) -> Discrepancy:
    stmt = sa.select(Discrepancy).where(Discrepancy.id == discrepancy_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    discrepancy = (await session.execute(stmt)).scalar_one_or_none()
    if discrepancy is not None:
        try:
            await get_run(session, discrepancy.run_id, partner_id=partner_id)
        except NotFound:
            discrepancy = None
    if discrepancy is None:
        raise NotFound("No discrepancy with this id", field=["input", "discrepancyId"])
    return discrepancy


async def resolve_discrepancy(
    *,
    session: AsyncSession,
    discrepancy_id: int,
    partner_id: int | None,
    resolved_by_id: int,
    resolution: str,
    now: dt.datetime | None = None,
) -> Discrepancy:
    """Mark a discrepancy RESOLVED with a note. `partner_id` is the operator acting (None =
    ADMIN). Errors: NotFound, InvalidInput (empty or long note), InvalidState (resolved already)."""
    resolution = (resolution or "").strip()
    if not resolution or len(resolution) > RESOLUTION_MAX:
        raise InvalidInput(f"resolution must be 1 to {RESOLUTION_MAX} characters", field=["input", "resolution"])
    discrepancy = await get_discrepancy(session, discrepancy_id, partner_id=partner_id, lock=True)
    if discrepancy.status == DiscrepancyStatus.RESOLVED:
        raise InvalidState("This discrepancy is resolved already")
    discrepancy.status = DiscrepancyStatus.RESOLVED
    discrepancy.resolution = resolution
    discrepancy.resolved_by_id = resolved_by_id
    discrepancy.resolved_at = now or utcnow()
    await session.flush()
    return discrepancy


__all__ = [
    "FIELDS",
    "ReportRecord",
    "check_record",
    "create_run",
    "discrepancies_query",
    "finish_pending",
    "get_discrepancy",
    "get_run",
    "iter_lines",
    "parse_csv",
    "parse_ndjson",
    "parse_record",
    "recover_runs",
    "resolve_discrepancy",
    "run_matching",
    "stage_records",
    "stage_report",
    "start_matching",
    "wait_for",
]
