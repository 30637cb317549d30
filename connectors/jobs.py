"""The periodic jobs of connectors and webhooks (`register_jobs`, called by the composition root).

* `connectors.sync` (every 5 s, one process at a time): starts the connector runs that are
  due by their schedule, or whose DOWN breaker may be tried again; the runs execute in
  background tasks of that process.
* `webhooks.dispatch` (every second, in every process): turns new outbox events into
  deliveries. It locks its position row, so processes take turns; it only opens a write
  transaction when there is something new.
* `webhooks.deliver` (every second, in every process): claims due deliveries with a lease
  and sends them.
"""

from __future__ import annotations

from connectors.runner import ConnectorRunner, runner_for
from connectors.webhooks import DeliveryWorker, worker_for
from gateway import webhooks as webhook_service
from gateway.jobs import Job, JobContext, JobRegistry


async def sync_connectors(ctx: JobContext) -> list[int]:
    if ctx.state is not None:
        return await runner_for(ctx.state).run_due(background=True)
    return await ConnectorRunner(db=ctx.db, settings=ctx.settings).run_due(background=False)


async def dispatch_webhooks(ctx: JobContext) -> int:
    if not await webhook_service.has_undispatched(ctx.db):
        return 0
    return await webhook_service.dispatch(db=ctx.db)


async def deliver_webhooks(ctx: JobContext) -> int:
    if ctx.state is not None:
        return await worker_for(ctx.state).run_once()
    worker = DeliveryWorker(db=ctx.db, settings=ctx.settings)
    try:
        return await worker.drain()
    finally:
        await worker.aclose()


def register_jobs(jobs: JobRegistry) -> None:
    jobs.add(Job.every("connectors.sync", 5, sync_connectors, timeout_seconds=120))
    jobs.add(Job.every("webhooks.dispatch", 1, dispatch_webhooks, singleton=False, timeout_seconds=60))
    jobs.add(Job.every("webhooks.deliver", 1, deliver_webhooks, singleton=False, timeout_seconds=300))
