"""The `audit.seal` job: chain the audit events written since its last run (gateway/audit.py).

Singleton under the job lease, so one process seals at a time (the sealer's head lock makes
a concurrent `mileage-gateway audit seal` safe as well)."""

from __future__ import annotations

from gateway import audit
from gateway.jobs import Job, JobContext, JobRegistry

#: How often the chain catches up: an event stays unsealed (changeable unnoticed) about this long.
SEAL_INTERVAL_SECONDS = 5
#: Batches (of `audit.SEAL_BATCH` events) one run seals at most, so a run ends well within its
#: timeout even while events keep arriving; the next run goes on from there.
MAX_BATCHES_PER_RUN = 100


async def seal_audit_job(ctx: JobContext) -> int:
    return await audit.seal(ctx.db, max_batches=MAX_BATCHES_PER_RUN)


def register_jobs(jobs: JobRegistry) -> None:
    jobs.add(Job.every("audit.seal", SEAL_INTERVAL_SECONDS, seal_audit_job))
