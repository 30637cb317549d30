"""The connector runner: executes one job of one connector and records it as a ConnectorRun.

* A run is started (a RUNNING row, gateway/connectors.py `start_run`) in a short transaction,
  then executed outside any transaction: the partner's system is called, page by page, and
  each page is applied together with its cursor in one short transaction, through the same
  services as the GraphQL mutations (`record_activities`, the reconciliation staging and
  matching). So a failed or interrupted run resumes where it stopped, and a second run
  credits nothing twice.
* Resilience: each call to the partner is bounded by the connector's `timeout_seconds`;
  transient failures (timeouts, connection errors, 5xx, 429) are retried with exponential
  backoff and jitter (tenacity); the whole run is bounded by
  `settings.connector_run_timeout_seconds`. What still fails counts against the connector's
  health (the circuit breaker in gateway/connectors.py).
* Every connection goes through the address guard (connectors/guarded_http.py): the host
  is resolved once, each address checked, and the connection made to the checked address;
  loopback, private, link-local and metadata addresses are refused unless
  `settings.webhook_allow_private` (GATEWAY_ALLOW_PRIVATE_ADDRESSES). A run's error never
  tells a refused connection from a timeout (it would tell which ports are open).
* `syncConnector` and the schedule run jobs in background tasks (`launch`), so a slow or
  unreachable partner never holds a request, a database lock or another partner's run.

Per-connector tuning, in the connector's config (all optional):

    "retry":   {"attempts": 3, "initial_seconds": 0.5, "max_seconds": 10, "jitter_seconds": 0.5}
    "breaker": {"failure_threshold": 3, "cooldown_seconds": 300}
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from connectors.base import (
    ActivityRecord,
    BadRecord,
    ConnectorContext,
    ConnectorError,
    Page,
    PermanentError,
    ReconciliationReport,
    StatementDocument,
    TransientError,
)
from connectors.guarded_http import blocked, guarded_transport
from connectors.registry import Registry, UnknownConnector
from connectors.registry import registry as default_registry
from gateway import connectors as service
from gateway import reconciliation, statements
from gateway.activity import MAX_BATCH, record_activities
from gateway.campaigns import seoul_today
from gateway.db import Database, utcnow
from gateway.errors import DomainError
from gateway.jobs import on_shutdown, state_extra
from gateway.models.campaigns import IssuedStatement
from gateway.models.connectors import ConnectorJob, ConnectorRun
from gateway.models.partners import Agreement, Partner
from gateway.models.settlement import FlowKind
from gateway.reconciliation import ReportRecord
from gateway.settings import Settings

log = logging.getLogger("connectors.runner")
T = TypeVar("T")

#: A run stops asking for pages after this many (a source that never says "no more").
MAX_PAGES = 100_000
USER_AGENT = "mileage-gateway-connector/1"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    initial_seconds: float = 0.5
    max_seconds: float = 10.0
    jitter_seconds: float = 0.5

    @classmethod
    def from_config(cls, config: dict | None) -> RetryPolicy:
        config = dict(config or {})
        return cls(
            attempts=max(1, min(int(config.get("attempts", cls.attempts)), 10)),
            initial_seconds=float(config.get("initial_seconds", cls.initial_seconds)),
            max_seconds=float(config.get("max_seconds", cls.max_seconds)),
            jitter_seconds=float(config.get("jitter_seconds", cls.jitter_seconds)),
        )


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, ConnectorError) and exc.transient


class ConnectorRunner:
    """Runs connector jobs for one gateway process (its background runs live here)."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        registry: Registry | None = None,
        signer: Any = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.registry = registry or default_registry
        #: A document signer (the key store), for connectors that issue statements to push.
        self.signer = signer if hasattr(signer, "sign_detached") else None
        self.clock = clock
        self._tasks: dict[int, asyncio.Task] = {}

    @property
    def stale_after(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.connector_run_timeout_seconds + 60)

    # ------------------------------------------------------------ starting runs

    async def start(self, *, partner_id: int, job: ConnectorJob, trigger: str = "manual") -> tuple[ConnectorRun, bool]:
        """Record a RUNNING run (or find the one already running); raises the service's DomainErrors."""
        async with self.db.transaction() as session:
            return await service.start_run(
                session=session,
                partner_id=partner_id,
                job=job,
                trigger=trigger,
                now=self.clock(),
                stale_after=self.stale_after,
            )

    def launch(self, run_id: int) -> asyncio.Task:
        """Execute a started run in a background task of this process."""
        task = self._tasks.get(run_id)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self.execute(run_id), name=f"connector-run-{run_id}")
            self._tasks[run_id] = task
            task.add_done_callback(lambda _t, rid=run_id: self._tasks.pop(rid, None))
        return task

    async def sync(self, *, partner_id: int, job: ConnectorJob, trigger: str = "manual") -> ConnectorRun:
        """Start a run and wait for its end (the CLI, tests); a run already in progress is
        waited for when it is this process's, else returned as it is."""
        run, created = await self.start(partner_id=partner_id, job=job, trigger=trigger)
        if created:
            return await self.execute(run.id)
        task = self._tasks.get(run.id)
        if task is not None:
            await asyncio.shield(task)
        return await self.get(run.id)

    async def run_due(self, *, background: bool = True) -> list[int]:
        """Start the runs the schedule (or a DOWN breaker's retry time) makes due."""
        async with self.db.transaction() as session:
            runs = await service.start_due_runs(session=session, now=self.clock(), stale_after=self.stale_after)
            ids = [r.id for r in runs]
        for run_id in ids:
            if background:
                self.launch(run_id)
            else:
                await self.execute(run_id)
        return ids

    async def get(self, run_id: int) -> ConnectorRun:
        async with self.db.session() as session:
            return await service.get_run(session, run_id)

    async def wait_idle(self) -> None:
        """Wait for this process's background runs (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self, timeout: float = 5.0) -> None:
        """Let background runs finish for a moment, then stop them (they are marked FAILED)."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # ------------------------------------------------------------ executing a run

    async def execute(self, run_id: int) -> ConnectorRun:
        """Do the work of a started run and finish it (COMPLETED or FAILED); never raises for
        the partner's or the connector's failures."""
        async with self.db.session() as session:
            run = await service.get_run(session, run_id)
            connector = await service.get_connector(session, run.connector_id)
            partner = await session.get(Partner, run.partner_id)
        config = dict(connector.config or {})
        breaker = service.Breaker(
            failure_threshold=int(
                (config.get("breaker") or {}).get("failure_threshold", self.settings.connector_failure_threshold)
            ),
            cooldown_seconds=float(
                (config.get("breaker") or {}).get("cooldown_seconds", self.settings.connector_cooldown_seconds)
            ),
        )
        retry = RetryPolicy.from_config(config.get("retry"))
        timeout = float(config.get("timeout_seconds", 10.0))
        error: str | None = None
        upstream = False
        try:
            info = self.registry.get(connector.kind)
            credentials = service.credentials_of(connector, self.settings.secret_key)
            async with httpx.AsyncClient(
                transport=guarded_transport(allow_private=self.settings.webhook_allow_private),
                timeout=httpx.Timeout(timeout),
                trust_env=False,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
            ) as http:
                context = ConnectorContext(
                    partner_code=partner.code, kind=connector.kind, http=http, timeout_seconds=timeout, log=log
                )
                instance = info.cls(config=config, credentials=credentials, context=context)
                try:
                    async with asyncio.timeout(self.settings.connector_run_timeout_seconds):
                        await self._handlers[run.job](self, instance, run, connector, retry)
                finally:
                    closer = getattr(instance, "aclose", None)
                    if closer is not None:
                        await closer()
        except ConnectorError as exc:
            error, upstream = str(exc) or type(exc).__name__, exc.upstream
        except UnknownConnector as exc:
            error = str(exc)
        except DomainError as exc:
            error = exc.message
        except TimeoutError:
            error = f"the run took longer than {self.settings.connector_run_timeout_seconds} s and was stopped"
            upstream = True
        except asyncio.CancelledError:
            await asyncio.shield(
                self._finish(run_id, "interrupted: the gateway stopped during the run", False, breaker)
            )
            raise
        except Exception:  # noqa: BLE001 - a bug in a connector must not kill the worker
            # The partner sees the run's error: nothing of the exception (it may quote a
            # driver, a path or a socket error); the log has it under the run's id.
            log.exception("connector run %s failed", run_id)
            error = f"the connector failed unexpectedly (run {run_id}; the gateway's log has the details)"
        if error:
            log.warning("connector run %s (%s %s) failed: %s", run_id, connector.kind, run.job.value, error)
        return await self._finish(run_id, error, upstream, breaker)

    async def _finish(self, run_id: int, error: str | None, upstream: bool, breaker: service.Breaker) -> ConnectorRun:
        async with self.db.transaction() as session:
            return await service.finish_run(
                session=session,
                run_id=run_id,
                error=error,
                upstream_failure=upstream,
                breaker=breaker,
                now=self.clock(),
            )

    async def _call(self, retry: RetryPolicy, run_id: int, fn: Callable[[], Awaitable[T]]) -> T:
        """Call the partner with retries for transient failures (backoff with jitter)."""
        retries = 0

        def count(_state) -> None:
            nonlocal retries
            retries += 1

        async def attempt() -> T:
            try:
                return await fn()
            except httpx.TransportError as exc:  # a connector that let httpx's errors through
                refused = blocked(exc)
                if refused is not None:
                    raise PermanentError(f"{refused}; connectors reach public addresses only") from None
                # Refused, timed out or cut off: one message, so that a run's error does not
                # tell whether a port is open (the log keeps the detail).
                log.info("connector run %s: %s: %s", run_id, type(exc).__name__, exc)
                raise TransientError("connection failed or no answer in time") from None

        try:
            return await AsyncRetrying(
                stop=stop_after_attempt(retry.attempts),
                wait=wait_exponential_jitter(
                    initial=retry.initial_seconds, max=retry.max_seconds, jitter=retry.jitter_seconds
                ),
                retry=retry_if_exception(_transient),
                before_sleep=count,
                reraise=True,
            )(attempt)
        finally:
            if retries:
                async with self.db.transaction() as session:
                    await service.record_progress(
                        session=session, run_id=run_id, advance_cursor=False, counts={"retries": retries}
                    )

    # ------------------------------------------------------------ jobs

    async def _pull_activity(self, instance, run: ConnectorRun, connector, retry: RetryPolicy) -> None:
        cursor = service.cursor_of(connector, ConnectorJob.PULL_ACTIVITY)
        for _ in range(MAX_PAGES):
            page: Page[ActivityRecord] = await self._call(retry, run.id, lambda c=cursor: instance.fetch_activity(c))
            records = [
                dataclasses.replace(r, source=(r.source or f"connector:{connector.kind}")[:64]) for r in page.records
            ]
            counts: dict[str, int] = {}
            async with self.db.transaction() as session:
                for chunk in _chunks(records, MAX_BATCH):
                    outcomes = await record_activities(
                        session=session,
                        operator_id=run.partner_id,
                        records=chunk,
                        now=self.clock(),
                        backdate_days=self.settings.activity_backdate_days,
                    )
                    for outcome in outcomes:
                        counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
                        if outcome.points_credited:
                            counts["points"] = counts.get("points", 0) + outcome.points_credited
                await service.record_progress(
                    session=session, run_id=run.id, cursor=page.cursor, records=len(records), counts=counts
                )
            if not page.has_more or page.cursor == cursor:
                return
            cursor = page.cursor

    async def _pull_reconciliation(self, instance, run: ConnectorRun, connector, retry: RetryPolicy) -> None:
        job = ConnectorJob.PULL_RECONCILIATION
        cursor = service.cursor_of(connector, job)
        for _ in range(MAX_PAGES):
            page: Page[ReconciliationReport] = await self._call(
                retry, run.id, lambda c=cursor: instance.fetch_reconciliation(c)
            )
            for report in page.records:
                key = _report_key(report)
                if key and service.has_seen(connector, job, key):
                    continue
                async with self.db.session() as session:
                    # Only the partner's own agreements: another's answers like an unknown code.
                    agreement_id = await session.scalar(
                        sa.select(Agreement.id).where(
                            Agreement.code == report.agreement_code,
                            sa.or_(
                                Agreement.operator_a_id == run.partner_id, Agreement.operator_b_id == run.partner_id
                            ),
                        )
                    )
                if agreement_id is None:
                    raise BadRecord(
                        f"{report.name or 'a report'}: No agreement with code {report.agreement_code!r} that this partner is party to"
                    )
                recon_id = await reconciliation.stage_report(
                    db=self.db,
                    agreement_id=agreement_id,
                    partner_id=run.partner_id,
                    period_start=report.period_start,
                    period_end=report.period_end,
                    records=_report_records(report),
                    now=self.clock(),
                )
                matched = await reconciliation.run_matching(db=self.db, run_id=recon_id)
                async with self.db.transaction() as session:
                    await service.record_progress(
                        session=session,
                        run_id=run.id,
                        advance_cursor=False,
                        records=int(matched.partner_records or 0),
                        detail={"reconciliationRuns": [recon_id]},
                        remember=key,
                    )
                    connector = await service.get_connector(session, connector.id)
            async with self.db.transaction() as session:
                await service.record_progress(session=session, run_id=run.id, cursor=page.cursor)
            if not page.has_more or page.cursor == cursor:
                return
            cursor = page.cursor

    async def _push_statement(self, instance, run: ConnectorRun, connector, retry: RetryPolicy) -> None:
        if (connector.config or {}).get("issue_monthly") and self.signer is not None:
            await self._issue_last_month(run.partner_id)
        cursor = service.cursor_of(connector, ConnectorJob.PUSH_STATEMENT)
        after = int(cursor) if cursor and cursor.isdigit() else 0
        async with self.db.session() as session:
            sponsor = await session.get(Partner, run.partner_id)
            rows = (
                (
                    await session.execute(
                        sa.select(IssuedStatement)
                        .where(
                            IssuedStatement.sponsor_id == run.partner_id,
                            IssuedStatement.provisional.is_(False),
                            IssuedStatement.digest != "",
                            IssuedStatement.id > after,
                        )
                        .order_by(IssuedStatement.id)
                        .limit(1000)
                    )
                )
                .scalars()
                .all()
            )
        for row in rows:
            statement = statements.Statement.from_issued(row)
            document = StatementDocument(
                id=f"statement-{row.id}",
                sponsor_code=sponsor.code,
                period_start=statement.period_start,
                period_end=statement.period_end,
                document=statement.document,
                digest=statement.digest,
                signature=statement.signature,
                csv=statements.render_csv(statement),
                total_won=statement.total_won,
            )
            await self._call(retry, run.id, lambda d=document: instance.push_statement(d))
            async with self.db.transaction() as session:
                await service.record_progress(
                    session=session, run_id=run.id, cursor=str(row.id), records=1, detail={"statements": [row.id]}
                )

    async def _issue_last_month(self, sponsor_id: int) -> None:
        """Issue the sponsor's statement of the last calendar month (Asia/Seoul) if it is not
        issued yet (config "issue_monthly": true)."""
        today = seoul_today(self.clock())
        end = today.replace(day=1) - dt.timedelta(days=1)
        start = end.replace(day=1)
        try:
            async with self.db.transaction() as session:
                await statements.donation_statement(
                    session=session,
                    sponsor_id=sponsor_id,
                    period_start=start,
                    period_end=end,
                    signer=self.signer,
                    now=self.clock(),
                )
        except DomainError as exc:
            log.info("statement of %s..%s not issued for sponsor %s: %s", start, end, sponsor_id, exc.message)

    _handlers = {
        ConnectorJob.PULL_ACTIVITY: _pull_activity,
        ConnectorJob.PULL_RECONCILIATION: _pull_reconciliation,
        ConnectorJob.PUSH_STATEMENT: _push_statement,
    }


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _report_key(report: ReconciliationReport) -> str | None:
    if not report.name:
        return None
    raw = f"{report.agreement_code}|{report.period_start}|{report.period_end}|{report.name}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


async def _report_records(report: ReconciliationReport) -> AsyncIterator:
    source = report.records
    if hasattr(source, "__aiter__"):
        async for record in source:
            yield _to_report_record(record, FlowKind, ReportRecord)
    else:
        for record in source:
            yield _to_report_record(record, FlowKind, ReportRecord)


def _to_report_record(record, FlowKind, ReportRecord):
    try:
        kind = FlowKind(record.kind)
    except ValueError:
        raise BadRecord(
            f"record {record.reference!r}: kind {record.kind!r} is not one of {', '.join(k.value for k in FlowKind)}"
        ) from None
    return ReportRecord(
        reference=record.reference, kind=kind, amount_won=record.amount_won, occurred_at=record.occurred_at
    )


# ---------------------------------------------------------------- one runner per app


def runner_for(state: Any) -> ConnectorRunner:
    """The process's runner, kept on the app state (created on first use; closed at shutdown)."""
    extra = state_extra(state)
    runner = extra.get("connector_runner")
    if runner is None:
        runner = ConnectorRunner(db=state.db, settings=state.settings, signer=getattr(state, "keystore", None))
        extra["connector_runner"] = runner
        on_shutdown(state, runner.close)
    return runner


__all__ = ["ConnectorRunner", "RetryPolicy", "runner_for"]
