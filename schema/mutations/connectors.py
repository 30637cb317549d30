"""syncConnector (contract) and configureConnector (ADMIN, an addition)."""

from __future__ import annotations

import json

import strawberry

from gateway import connectors as connector_service
from gateway import partners as partner_service
from gateway.db import utcnow
from gateway.errors import InvalidInput
from gateway.models.connectors import ConnectorJob
from schema.errors import UserError, forbidden, mutate
from schema.permissions import ADMIN, OPERATOR, SPONSOR, needs, principal_of
from schema.types.connectors import Connector, ConnectorJobEnum, ConnectorRun


@strawberry.input
class SyncConnectorInput:
    partner_code: str
    job: ConnectorJobEnum


@strawberry.type
class ConnectorRunPayload:
    run: ConnectorRun | None
    errors: list[UserError]


@strawberry.input
class ConfigureConnectorInput:
    partner_code: str
    kind: str = strawberry.field(description="A registered connector type, e.g. http-json or csv-batch.")
    jobs: list[ConnectorJobEnum]
    config: str = strawberry.field(description="The type's settings, a JSON object (docs/connectors.md).")
    credentials: str | None = strawberry.field(
        default=None,
        description="Secrets, a JSON object, stored encrypted and never shown back; omitted: keep the stored ones, {}: remove them.",
    )
    schedule_seconds: int | None = strawberry.field(
        default=None, description="Run every this many seconds (at least 10); null: on demand only."
    )
    enabled: bool = True


@strawberry.type
class ConnectorPayload:
    connector: Connector | None
    errors: list[UserError]


def _json_object(text: str | None, name: str) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{name} is not valid JSON: {exc}", field=["input", name]) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object", field=["input", name])
    return value


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="ADMIN, or the partner for its own connector.",
        extensions=needs("connectors:write", OPERATOR, SPONSOR),
    )
    async def sync_connector(self, info: strawberry.Info, input: SyncConnectorInput) -> ConnectorRunPayload:
        principal = principal_of(info)
        if not principal.is_admin and input.partner_code != principal.partner_code:
            raise forbidden("A partner may sync only its own connector.")
        launcher: connector_service.RunLauncher = info.context.state.connector_runs  # gateway/composition.py
        started: list[tuple[int, bool]] = []

        async def work(session):
            partner = await partner_service.require(session, input.partner_code, field=["input", "partnerCode"])
            run, created = await connector_service.request_run(
                session=session,
                launcher=launcher,
                partner_id=partner.id,
                job=ConnectorJob(input.job.value),
                now=utcnow(),
            )
            started.append((run.id, created))
            return run

        payload = await mutate(
            info, work, lambda run, errors: ConnectorRunPayload(run=ConnectorRun.from_model(run), errors=errors)
        )
        for run_id, created in started:
            if created and not payload.errors:
                launcher.launch(run_id)  # after the commit: the run executes in the background
        return payload

    @strawberry.mutation(
        description="ADMIN: create or change a partner's connector (one per type and partner).",
        extensions=needs("admin", ADMIN),
    )
    async def configure_connector(self, info: strawberry.Info, input: ConfigureConnectorInput) -> ConnectorPayload:
        jobs = [ConnectorJob(j.value) for j in input.jobs]
        refused: InvalidInput | None = None
        config: dict = {}
        try:
            # The address guard resolves host names: before the transaction, not inside it.
            config = await connector_service.check_config(
                types=info.context.state.connector_types,  # gateway/composition.py
                kind=input.kind,
                jobs=jobs,
                config=_json_object(input.config, "config"),
                allow_private=info.context.settings.webhook_allow_private,
            )
        except InvalidInput as exc:
            refused = exc

        async def work(session):
            if refused is not None:
                raise refused
            partner = await partner_service.require(session, input.partner_code, field=["input", "partnerCode"])
            return await connector_service.configure(
                session=session,
                secret_key=info.context.settings.secret_key,
                partner=partner,
                kind=input.kind,
                jobs=jobs,
                config=config,
                credentials=_json_object(input.credentials, "credentials"),
                schedule_seconds=input.schedule_seconds,
                enabled=input.enabled,
            )

        return await mutate(
            info, work, lambda c, errors: ConnectorPayload(connector=Connector.from_model(c), errors=errors)
        )
