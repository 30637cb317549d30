"""The Starlette application factory: routes, shared state, lifespan.

`create_app` is the composition root of a serving process: it builds the services, mounts
every face, registers the activity listeners and hands the scheduler the jobs of every
package (gateway/composition.py)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from auth.keys import KeyStore
from auth.resource import TokenVerifier
from auth.server import oauth_routes
from connectors.pos_rest import pos_routes
from gateway import composition
from gateway.db import Database
from gateway.jobs import start_background, stop_background
from gateway.metrics import MetricsMiddleware
from gateway.settings import Settings
from schema import build_schema
from schema.body_deadline import BodyDeadline
from schema.http import GatewayGraphQL, GraphQLEndpoint
from schema.metrics_http import metrics_endpoint
from schema.overload import pool_timeout_handler
from schema.rest_errors import last_resort, routing_error
from schema.settlement_http import settlement_routes
from schema.statement_http import statement_routes


@dataclass
class AppState:
    """What every request handler shares: settings, database, keys, token verifier."""

    settings: Settings
    db: Database
    keystore: Any = None
    verifier: Any = None
    #: gateway.connectors.RunLauncher and ConnectorTypes (gateway/composition.py `wire_connectors`).
    connector_runs: Any = None
    connector_types: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    composition.register_listeners()  # campaign commitments follow credited walking
    jobs = composition.job_registry()
    db = Database.from_settings(settings)  # pool sized by settings, shown in /metrics
    state = AppState(settings=settings, db=db)
    state.keystore = KeyStore(db=db, settings=settings)
    state.verifier = TokenVerifier(db=db, settings=settings, keystore=state.keystore)
    composition.wire_connectors(state)

    graphql = GraphQLEndpoint(state, GatewayGraphQL(build_schema(), state=state))

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> JSONResponse:
        try:
            await db.ping()
        except Exception as exc:  # noqa: BLE001 - readiness reports any database failure
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ready", "database": db.dialect})

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint(state)),  # a metrics:read token
        Route("/graphql", graphql, methods=["GET", "POST"]),
        *oauth_routes(state),
        *settlement_routes(state),
        *statement_routes(state),
        *pos_routes(state),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await state.keystore.ensure_keys()
        await start_background(state, jobs)  # the job scheduler, when settings.scheduler is on
        try:
            yield
        finally:
            await stop_background(state)
            await db.dispose()

    # Metrics outermost, so a 408 sent by BodyDeadline is counted; `last_resort` answers any
    # exception no face caught, masked, in the shape of the face it came through.
    middleware = [
        Middleware(MetricsMiddleware),
        Middleware(BodyDeadline, timeout=settings.body_timeout_seconds, min_rate=settings.body_min_rate),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={
            Exception: last_resort,
            PoolTimeout: pool_timeout_handler,
            HTTPException: routing_error,
        },  # overload: 503
    )
    app.state.gateway = state
    return app
