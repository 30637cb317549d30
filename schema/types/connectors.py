"""Connectors and their runs."""

from __future__ import annotations

import strawberry
from strawberry.dataloader import DataLoader

from gateway import connectors as connector_service
from gateway.models.connectors import ConnectorConfig, ConnectorJob, ConnectorStatus
from gateway.models.connectors import ConnectorRun as RunRow
from schema.ids import encode_id
from schema.scalars import BigInt, DateTime
from schema.types.partners import Partner, load_partner
from schema.types.settlement import ReconciliationStatusEnum

ConnectorStatusEnum = strawberry.enum(ConnectorStatus, name="ConnectorStatus")
ConnectorJobEnum = strawberry.enum(ConnectorJob, name="ConnectorJob")


@strawberry.type
class ConnectorRun:
    id: strawberry.ID
    job: ConnectorJobEnum
    status: ReconciliationStatusEnum
    records: BigInt
    error: str | None
    started_at: DateTime
    finished_at: DateTime | None
    trigger: str = strawberry.field(
        description='What started the run: "manual" (syncConnector, the CLI) or "schedule".'
    )

    @classmethod
    def from_model(cls, row: RunRow | None) -> ConnectorRun | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("ConnectorRun", row.id)),
            job=row.job,
            status=ReconciliationStatusEnum(row.status.value),
            records=row.records or 0,
            error=row.error,
            started_at=row.started_at,
            finished_at=row.finished_at,
            trigger=row.trigger,
        )


def _runs_loader(ctx) -> DataLoader:
    """Keys (connector id, how many): the newest runs of each, one statement per `first`."""

    async def load(keys: list[tuple[int, int]]) -> list[list[RunRow]]:
        found: dict[tuple[int, int], list[RunRow]] = {}
        for n in {n for _, n in keys}:
            ids = [cid for cid, m in keys if m == n]
            for cid, runs in (await connector_service.recent_runs(ctx.session, ids, n)).items():
                found[(cid, n)] = runs
        return [found.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


@strawberry.type
class Connector:
    kind: str = strawberry.field(description="Registered connector type, e.g. http-json or csv-batch.")
    status: ConnectorStatusEnum
    last_sync_at: DateTime | None
    last_error: str | None
    jobs: list[ConnectorJobEnum] = strawberry.field(description="The jobs this connector serves.")
    schedule_seconds: int | None = strawberry.field(description="Runs every this many seconds; null: on demand only.")
    next_sync_at: DateTime | None = strawberry.field(description="When the schedule runs it next.")
    partner_id: strawberry.Private[int]
    pk: strawberry.Private[int]

    @strawberry.field
    async def partner(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.partner_id)

    @strawberry.field(description="The newest runs first.")
    async def runs(self, info: strawberry.Info, first: int | None = 20) -> list[ConnectorRun]:
        n = max(0, min(first if first is not None else 20, info.context.settings.max_page_size))
        rows = await info.context.loaders.get("connector_runs", _runs_loader).load((self.pk, n))
        return [ConnectorRun.from_model(row) for row in rows]

    @classmethod
    def from_model(cls, row: ConnectorConfig | None) -> Connector | None:
        if row is None:
            return None
        return cls(
            kind=row.kind,
            status=row.status,
            last_sync_at=row.last_sync_at,
            last_error=row.last_error,
            jobs=[ConnectorJob(j) for j in row.jobs or []],
            schedule_seconds=row.schedule_seconds,
            next_sync_at=row.next_sync_at,
            partner_id=row.partner_id,
            pk=row.id,
        )
