"""Scheduled settlement work: close the periods that have ended; recover stuck reconciliation runs."""

from __future__ import annotations

from auth.keys import KeyStore
from gateway.jobs import Job, JobContext, JobRegistry
from gateway.reconciliation import recover_runs
from gateway.settlement import close_due_settlements

CLOSE_INTERVAL_SECONDS = 300
RECOVER_INTERVAL_SECONDS = 600


async def _signer(ctx: JobContext):
    keystore = getattr(ctx.state, "keystore", None)
    if keystore is None:  # `mileage-gateway jobs run-once`: no app, load the keys here
        keystore = KeyStore(db=ctx.db, settings=ctx.settings)
        await keystore.ensure_keys()
    return keystore


async def close_settlements_job(ctx: JobContext) -> list[int]:
    """Every period that has ended (Asia/Seoul) is closed, signed and announced."""
    return await close_due_settlements(db=ctx.db, signer=await _signer(ctx))


async def recover_reconciliation_job(ctx: JobContext) -> list[int]:
    """Runs left RUNNING by a stopped process are matched again, or failed if never staged."""
    return await recover_runs(db=ctx.db)


def register_jobs(jobs: JobRegistry) -> None:
    jobs.add(Job.every("settlement.close_due", CLOSE_INTERVAL_SECONDS, close_settlements_job))
    jobs.add(Job.every("reconciliation.recover", RECOVER_INTERVAL_SECONDS, recover_reconciliation_job))
