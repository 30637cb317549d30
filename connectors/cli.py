"""`mileage-gateway connectors ...`: list types and connectors, configure one, sync now."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from connectors.registry import registry
from connectors.runner import ConnectorRunner
from gateway import connectors as service
from gateway import partners as partner_service
from gateway.db import Database
from gateway.errors import DomainError
from gateway.models import Partner
from gateway.models.connectors import ConnectorJob
from gateway.settings import Settings


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser("connectors", help="partner connectors (docs/connectors.md)")
    sub = parser.add_subparsers(dest="connectors_command", required=True)

    sub.add_parser("types", help="installed connector types and the jobs they serve").set_defaults(func=_types)
    sub.add_parser("list", help="configured connectors, one JSON object a line").set_defaults(func=_list)

    configure = sub.add_parser("configure", help="create or change a partner's connector")
    configure.add_argument("partner", help="partner code")
    configure.add_argument("kind", help="connector type, e.g. http-json")
    configure.add_argument(
        "--jobs", required=True, help="comma-separated: PULL_ACTIVITY, PULL_RECONCILIATION, PUSH_STATEMENT"
    )
    configure.add_argument("--config", required=True, help="JSON object, or @file.json")
    configure.add_argument("--credentials", help="JSON object, or @file.json (stored encrypted)")
    configure.add_argument("--every", type=int, help="run every this many seconds (default: on demand only)")
    configure.add_argument("--disable", action="store_true", help="switch the connector off")
    configure.set_defaults(func=_configure)

    sync = sub.add_parser("sync", help="run one job of a partner's connector now and wait for it")
    sync.add_argument("partner")
    sync.add_argument("job", choices=["PULL_ACTIVITY", "PULL_RECONCILIATION", "PUSH_STATEMENT"])
    sync.set_defaults(func=_sync)


def _json_arg(value: str | None):
    if value is None:
        return None
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    return json.loads(text)


def _run(main):
    async def wrapper():
        settings = Settings.from_env()
        db = Database(settings.database_url)
        try:
            return await main(db, settings)
        finally:
            await db.dispose()

    return asyncio.run(wrapper())


def _types(args: argparse.Namespace) -> int:
    for kind in registry.kinds():
        info = registry.get(kind)
        print(json.dumps({"kind": kind, "jobs": sorted(info.jobs), "distribution": info.distribution}))
    return 0


def _connector_json(row, partner_code: str) -> dict:
    return {
        "partner": partner_code,
        "kind": row.kind,
        "jobs": row.jobs,
        "status": row.status.value,
        "scheduleSeconds": row.schedule_seconds,
        "lastSyncAt": row.last_sync_at.isoformat() if row.last_sync_at else None,
        "lastError": row.last_error,
    }


def _list(args: argparse.Namespace) -> int:
    async def main(db, settings):
        async with db.session() as session:
            rows = (await session.execute(service.connectors_of(None))).scalars().all()
            for row in rows:
                partner = await session.get(Partner, row.partner_id)
                print(json.dumps(_connector_json(row, partner.code)))

    _run(main)
    return 0


def _configure(args: argparse.Namespace) -> int:
    async def main(db, settings):
        jobs = [ConnectorJob(j.strip()) for j in args.jobs.split(",") if j.strip()]
        config = registry.validate(args.kind, [j.value for j in jobs], _json_arg(args.config))
        async with db.transaction() as session:
            partner = await partner_service.require(session, args.partner)
            row = await service.configure(
                session=session,
                secret_key=settings.secret_key,
                partner=partner,
                kind=args.kind,
                jobs=jobs,
                config=config,
                credentials=_json_arg(args.credentials),
                schedule_seconds=args.every,
                enabled=not args.disable,
            )
            return _connector_json(row, partner.code)

    try:
        print(json.dumps(_run(main)))
    except DomainError as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _sync(args: argparse.Namespace) -> int:
    async def main(db, settings):
        async with db.session() as session:
            partner = await partner_service.require(session, args.partner)
        run = await ConnectorRunner(db=db, settings=settings).sync(
            partner_id=partner.id, job=ConnectorJob(args.job), trigger="manual"
        )
        return {
            "run": run.id,
            "status": run.status.value,
            "records": run.records,
            "error": run.error,
            "detail": run.detail,
        }

    try:
        result = _run(main)
    except DomainError as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0 if result["status"] == "COMPLETED" else 1
