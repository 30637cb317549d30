"""`mileage-gateway`: serve, migrate, demo, bootstrap clients, keys, secret key, audit, documents."""

# The composition root of command-line processes: `main` registers the activity listeners and
# gives the `jobs` commands the jobs of every package (gateway/composition.py), as
# `create_app` does for a serving process.
from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys

import uvicorn

from auth.keys import rotate_cli
from connectors import cli as connectors_cli
from gateway import audit, composition, demo, jobs, verify
from gateway.bootstrap import create_admin_client
from gateway.db import Database
from gateway.migrations import upgrade_sync
from gateway.rekey import RekeyError, rekey
from gateway.settings import Settings
from schema import export_sdl


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except RuntimeError as exc:  # a missing or weak GATEWAY_SECRET_KEY: say so, no traceback
        print(f"mileage-gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    if not args.no_migrate:
        upgrade_sync(settings.database_url)
    print(
        f"mileage-gateway: serving on http://{args.host}:{args.port} ({settings.env}, {settings.database_url.split(':', 1)[0]})",
        file=sys.stderr,
    )
    if args.workers > 1 and not settings.redis_url:
        print(
            f"mileage-gateway: warning: without GATEWAY_REDIS_URL each of the {args.workers} workers "
            "counts the rate limits on its own (docs/operations.md)",
            file=sys.stderr,
        )
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=True,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    upgrade_sync(_settings().database_url)
    print("database is up to date", file=sys.stderr)
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(export_sdl())
    return 0


def cmd_create_admin_client(args: argparse.Namespace) -> int:
    settings = _settings()
    if not args.no_migrate:
        upgrade_sync(settings.database_url)
    client_id, secret = asyncio.run(create_admin_client(settings))
    if args.json:
        print(json.dumps({"client_id": client_id, "client_secret": secret}))
    else:
        print(f"client_id:     {client_id}\nclient_secret: {secret}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    print(json.dumps(asyncio.run(rotate_cli(_settings()))))
    return 0


def cmd_secret_key(args: argparse.Namespace) -> int:
    # 32 random bytes, URL-safe base64 (43 characters): what GATEWAY_SECRET_KEY must hold.
    print(secrets.token_urlsafe(32))
    return 0


def cmd_rekey(args: argparse.Namespace) -> int:
    settings = _settings()
    if not getattr(settings.secret_key, "previous", ()):
        print(
            "mileage-gateway: rekey: note: GATEWAY_OLD_SECRET_KEYS is empty; only checking that "
            "everything opens with GATEWAY_SECRET_KEY",
            file=sys.stderr,
        )

    async def run() -> dict:
        db = Database(settings.database_url)
        try:
            return await rekey(db=db, secret_key=settings.secret_key)
        finally:
            await db.dispose()

    try:
        print(json.dumps(asyncio.run(run())))
    except RekeyError as exc:
        print(f"mileage-gateway: rekey: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mileage-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (migrates first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate the database first")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(func=cmd_migrate)
    sub.add_parser("export-schema", help="print the GraphQL schema (SDL)").set_defaults(func=cmd_export_schema)

    admin = sub.add_parser("create-admin-client", help="create an ADMIN partner if none exists and a new admin client")
    admin.add_argument("--json", action="store_true", help='print {"client_id": ..., "client_secret": ...} only')
    admin.add_argument("--no-migrate", action="store_true")
    admin.set_defaults(func=cmd_create_admin_client)

    keys = sub.add_parser("keys", help="signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser(
        "rotate", help="add a new signing key; the old one stays published until its tokens expire"
    ).set_defaults(func=cmd_keys_rotate)

    sub.add_parser("secret-key", help="print a new random GATEWAY_SECRET_KEY (256 bits)").set_defaults(
        func=cmd_secret_key
    )
    sub.add_parser(
        "rekey",
        help="re-seal every stored key, credential and webhook secret with GATEWAY_SECRET_KEY, "
        "opening them with GATEWAY_OLD_SECRET_KEYS (atomic; a re-run changes nothing)",
    ).set_defaults(func=cmd_rekey)

    # The other areas' commands, each added by its module's `register_cli`.
    demo.register_cli(sub)
    audit.register_cli(sub)
    jobs.register_cli(sub, jobs=composition.job_registry())
    connectors_cli.register_cli(sub)
    verify.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    composition.register_listeners()  # walking recorded here (demo, connector runs) grows commitments
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
