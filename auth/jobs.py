"""Periodic auth housekeeping (see gateway/jobs.py): key rotation on schedule, forgetting
revoked jtis and used assertion jtis once they can no longer matter."""

from __future__ import annotations

from auth import tokens
from auth.keys import KeyStore
from gateway.jobs import Job, JobContext, JobRegistry

ROTATE_INTERVAL_SECONDS = 3600
PURGE_INTERVAL_SECONDS = 3600


async def rotate_keys_if_due_job(ctx: JobContext) -> list[dict]:
    """Rotate the access-token key once it is `signing_key_rotation_days` old."""
    keystore = getattr(ctx.state, "keystore", None) or KeyStore(db=ctx.db, settings=ctx.settings)
    return await keystore.rotate_if_due()


async def purge_expired_job(ctx: JobContext) -> int:
    return await tokens.purge_expired(ctx.db)


def register_jobs(jobs: JobRegistry) -> None:
    jobs.add(Job.every("auth.rotate_keys_if_due", ROTATE_INTERVAL_SECONDS, rotate_keys_if_due_job))
    jobs.add(Job.every("auth.purge_expired", PURGE_INTERVAL_SECONDS, purge_expired_job))
