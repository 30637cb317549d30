"""`/graphql` over HTTP: bearer token first, then strawberry.

POST only for operations (queries by GET are off: no mutation can ride a link);
GET serves GraphiQL when it is enabled.
"""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL

from auth.resource import InvalidToken
from schema.context import Context


class GatewayGraphQL(GraphQL):
    """strawberry's ASGI app with our Context (principal set by `GraphQLEndpoint`)."""

    def __init__(self, schema, *, state: Any) -> None:
        settings = state.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=False,
            multipart_uploads_enabled=False,
        )
        self.state = state

    async def get_context(self, request: Request, response: Response) -> Context:
        ctx = request.scope["state"]["gateway_context"]
        ctx.request, ctx.response = request, response
        return ctx


class GraphQLEndpoint:
    """ASGI endpoint: authenticates POSTs, builds the Context, closes its session afterwards."""

    def __init__(self, state: Any, graphql_app: GatewayGraphQL) -> None:
        self.state = state
        self.app = graphql_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method == "GET":
            if not self.state.settings.graphiql:
                await JSONResponse({"errors": [{"message": "Queries by GET are off; POST them."}]}, 405)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.state.verifier.verify_request(request)
        except InvalidToken as exc:
            await exc.response()(scope, receive, send)
            return
        ctx = Context(
            request=request,
            response=None,
            db=self.state.db,
            settings=self.state.settings,
            principal=principal,
            state=self.state,
        )
        scope.setdefault("state", {})["gateway_context"] = ctx
        try:
            await self.app(scope, receive, send)
        finally:
            await ctx.close()
