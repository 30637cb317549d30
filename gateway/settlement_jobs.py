"""Scheduled settlement work: close the periods that have ended; recover stuck reconciliation runs."""
from __future__ import annotations

from gateway.jobs import JobContext, register_job
from gateway.reconciliation import recover_runs
from gateway.settlement import close_due_settlements

CLOSE_INTERVAL_SECONDS = 300
RECOVER_INTERVAL_SECONDS = 600


async def _signer(ctx: JobContext):
    keystore = getattr(ctx.state, "keystore", None)
    if keystore is None:  # `mileage-gateway jobs run-once`: no app, load the keys here
        from auth.keys import KeyStore

        keystore = KeyStore(db=ctx.db, settings=ctx.settings)
        await keystore.ensure_keys()
    return keystore


async def close_settlements_job(ctx: JobContext) -> list[int]:
    """Every period that has ended (Asia/Seoul) is closed, signed and announced."""
    return await close_due_settlements(db=ctx.db, signer=await _signer(ctx))


async def recover_reconciliation_job(ctx: JobContext) -> list[int]:
    """Runs left RUNNING by a stopped process are matched again, or failed if never staged."""
    return await recover_runs(db=ctx.db)


register_job("settlement.close_due", CLOSE_INTERVAL_SECONDS, close_settlements_job)
register_job("reconciliation.recover", RECOVER_INTERVAL_SECONDS, recover_reconciliation_job)
