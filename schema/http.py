"""`/graphql` over HTTP: bearer token, per-client limits, bounded body, then strawberry.

In order, for a POST:
1. the bearer token (401 without a valid one);
2. the client's rate limit and concurrency cap (429 with Retry-After);
3. the body, read up to `settings.max_body_bytes` and no further (413), and not nested
   deeper than JSON decoding can follow (400 INVALID_INPUT);
4. a batch (a JSON array) only when `settings.batching` is on and with at most
   `settings.max_batch` operations (400);
5. automatic persisted queries (Apollo's `extensions.persistedQuery.sha256Hash`),
   one store per partner (gateway/persisted_queries.py): an unknown hash alone answers
   `PERSISTED_QUERY_NOT_FOUND`, a hash with its query stores it once the query has
   validated (a query over `settings.persisted_query_max_bytes` is `LIMIT_EXCEEDED`;
   beyond `settings.persisted_queries_per_partner` the least recently used goes); a
   client registered with `persisted_queries_only` runs known hashes only;
6. strawberry runs the operation(s); the schema's extensions enforce the GraphQL
   limits and write the audit log (schema/limits.py, schema/extensions.py).

Every refusal here is a JSON body `{"errors": [{"message", "extensions": {"code"}}]}`
with `LIMIT_EXCEEDED` for a limit. Queries by GET are off (no mutation can ride a
link): GET only serves GraphiQL, when it is enabled.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.types import ExecutionResult

from auth.resource import InvalidToken
from gateway import metrics
from gateway import persisted_queries as apq
from gateway.limits_storage import SharedCounters
from gateway.ratelimit import Refusal, client_limiter
from gateway.untrusted import nested_too_deep
from schema.context import Context
from schema.extensions import record_refusal
from schema.limits import LIMIT_EXCEEDED


def error_response(status: int, message: str, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    error: dict[str, Any] = {"message": message}
    if code:
        error["extensions"] = {"code": code}
    return JSONResponse({"errors": [error]}, status_code=status, headers=headers)


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, receive: Receive, limit: int) -> bytes:
    """The request body, or BodyTooLarge as soon as it is known to exceed `limit` bytes.

    A declared Content-Length over the limit is refused without reading anything."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyTooLarge  # nothing to answer; the caller's response goes nowhere
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over the already-read body, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


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
        self.known_queries = apq.QueryCache()

    async def get_context(self, request: Request, response: Response) -> Context | None:
        ctx = request.scope.get("state", {}).get("gateway_context")
        if ctx is not None:
            ctx.request, ctx.response = request, response
        return ctx

    def _validate_batch_request(self, request_data, protocol) -> None:
        """Batches were already checked against the settings by `GraphQLEndpoint`."""

    async def execute_operation(self, request, request_adapter, request_data, context, root_value, sub_response):
        if not isinstance(request_data, list):
            return await super().execute_operation(
                request, request_adapter, request_data, context, root_value, sub_response
            )
        # A batch runs one operation after another, each with a context of its own:
        # its own read session (a session is not safe for concurrent use), loaders and
        # audit notes.
        results = []
        for data in request_data:
            item = dataclasses.replace(context, audit=[], _session=None, _loaders=None)
            try:
                results.append(
                    await self.execute_single(
                        request=request,
                        request_adapter=request_adapter,
                        sub_response=sub_response,
                        context=item,
                        root_value=root_value,
                        request_data=data,
                    )
                )
            finally:
                await item.close()
        return results

    async def execute_single(self, request, request_adapter, sub_response, context, root_value, request_data):
        if context is None:
            return await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        refusal, request_data, to_store = await self._persisted_query(context, request_data)
        if refusal is not None:
            code = refusal.extensions["code"]
            if code != "PERSISTED_QUERY_NOT_FOUND":
                await record_refusal(
                    context,
                    [{"query": request_data.query, "operationName": request_data.operation_name}],
                    code,
                    refusal.message,
                )
            return ExecutionResult(data=None, errors=[refusal])
        result = await super().execute_single(request, request_adapter, sub_response, context, root_value, request_data)
        if to_store is not None and not any(not e.path for e in result.errors or ()):
            # Stored only once it has parsed and validated: junk cannot fill the table.
            partner_id = context.principal.partner_id
            async with context.db.transaction() as session:
                evicted = await apq.store(
                    session=session,
                    partner_id=partner_id,
                    sha256=to_store,
                    query=request_data.query,
                    client_id=context.principal.client_id,
                    limit=context.settings.persisted_queries_per_partner,
                )
            for sha in evicted:
                self.known_queries.discard(partner_id, sha)
            self.known_queries.put(partner_id, to_store, request_data.query, time.monotonic())
        return result

    async def _persisted_query(self, ctx: Context, data):
        """(refusal error or None, request data with its query, hash to store or None).

        Reads in short sessions of their own: the request's session must not take its
        snapshot before a mutation has written (SQLite keeps one snapshot per transaction)."""
        only = ctx.principal.persisted_queries_only  # read with the token (None: not known)
        if only is None:
            async with ctx.db.session() as session:
                only = await apq.persisted_only(session=session, client_id=ctx.principal.client_id)
        return await self._resolve_persisted(ctx, data, only)

    async def _resolve_persisted(self, ctx: Context, data, only: bool):
        persisted = (data.extensions or {}).get("persistedQuery")
        if persisted is None:
            if only:
                return (
                    _coded("This client may run only persisted queries (extensions.persistedQuery).", "FORBIDDEN"),
                    data,
                    None,
                )
            return None, data, None
        sha = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            return (
                _coded("Only version 1 of persisted queries is supported.", "PERSISTED_QUERY_NOT_SUPPORTED"),
                data,
                None,
            )
        if not isinstance(sha, str) or not apq.SHA256_HEX.match(sha):
            return _coded("persistedQuery.sha256Hash must be 64 lowercase hex digits.", "INVALID_INPUT"), data, None
        known = await self._known(ctx, sha)
        if data.query is None:
            if known is None:
                return _coded("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND"), data, None
            return None, dataclasses.replace(data, query=known), None
        try:
            size = len(data.query.encode("utf-8"))
        except UnicodeEncodeError:
            return _coded("The query is not valid Unicode text (an unpaired surrogate).", "INVALID_INPUT"), data, None
        if apq.digest(data.query) != sha:
            return _coded("provided sha does not match query", "INVALID_INPUT"), data, None
        if known is None:
            if only:
                return (
                    _coded("This client may run only persisted queries, and this one is not known.", "FORBIDDEN"),
                    data,
                    None,
                )
            limit = ctx.settings.persisted_query_max_bytes
            if size > limit:
                message = (
                    f"A persisted query may be at most {limit} bytes; this one has {size}. "
                    "Send it without extensions.persistedQuery."
                )
                return _coded(message, LIMIT_EXCEEDED), data, None
            return None, data, sha
        return None, data, None

    async def _known(self, ctx: Context, sha: str) -> str | None:
        """The caller's partner's query under `sha`: from the cache while its last use is
        recent enough, else from the database, recording the use (for LRU eviction)."""
        partner_id = ctx.principal.partner_id
        cached = self.known_queries.get(partner_id, sha)
        now = time.monotonic()
        if cached is not None and now - cached.recorded < ctx.settings.persisted_query_touch_seconds:
            return cached.query
        async with ctx.db.transaction() as session:
            known = await apq.use(session=session, partner_id=partner_id, sha256=sha)
        if known is None:
            self.known_queries.discard(partner_id, sha)  # evicted meanwhile (perhaps by another process)
            return None
        self.known_queries.put(partner_id, sha, known, now)
        return known


def _coded(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


class GraphQLEndpoint:
    """ASGI endpoint: authenticates POSTs, applies the HTTP-level limits, builds the Context."""

    def __init__(self, state: Any, graphql_app: GatewayGraphQL) -> None:
        self.state = state
        self.app = graphql_app
        # In Redis when GATEWAY_REDIS_URL is set (shared by every process), else in this one.
        self.limiter = client_limiter(state.settings, SharedCounters.for_state(state))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.state.settings
        request = Request(scope, receive)
        if request.method != "POST":
            if request.method == "GET" and settings.graphiql and not request.query_params:
                await self.app(scope, receive, send)  # GraphiQL's page
                return
            await error_response(
                405, "Queries by GET are off; POST them as application/json.", headers={"Allow": "POST"}
            )(scope, receive, send)
            return
        try:
            principal = await self.state.verifier.verify_request(request)
        except InvalidToken as exc:
            await exc.response()(scope, receive, send)
            return

        admission = await self.limiter.acquire(principal.client_id)
        if isinstance(admission, Refusal):
            metrics.LIMITED.labels(admission.limit).inc()
            await error_response(
                429, admission.message, LIMIT_EXCEEDED, headers={"Retry-After": str(admission.retry_after)}
            )(scope, receive, send)
            return
        try:
            await self._admitted(scope, receive, send, request, principal)
        finally:
            await admission.release()

    async def _admitted(self, scope: Scope, receive: Receive, send: Send, request: Request, principal) -> None:
        settings = self.state.settings
        try:
            body = await read_body(request, receive, settings.max_body_bytes)
        except BodyTooLarge:
            metrics.LIMITED.labels("body").inc()
            await error_response(
                413,
                f"The request body exceeds {settings.max_body_bytes} bytes.",
                LIMIT_EXCEEDED,
                headers={"Connection": "close"},
            )(scope, receive, send)
            return
        if nested_too_deep(body):
            # json.loads (strawberry's too) raises RecursionError on such a body: answer it here.
            await error_response(400, "The JSON body is nested too deeply.", "INVALID_INPUT")(scope, receive, send)
            return

        ctx = Context(
            request=request,
            response=None,
            db=self.state.db,
            settings=settings,
            principal=principal,
            state=self.state,
        )
        try:
            refused = await self._refuse_batch(ctx, body)
            if refused is not None:
                metrics.LIMITED.labels("batch").inc()
                await refused(scope, receive, send)
                return
            scope.setdefault("state", {})["gateway_context"] = ctx
            await self.app(scope, replaying(body, receive), send)
        finally:
            await ctx.close()

    async def _refuse_batch(self, ctx: Context, body: bytes) -> Response | None:
        """A 400 for a batch the settings do not allow (its mutations go to the audit log)."""
        if not body.lstrip().startswith(b"["):
            return None
        settings = self.state.settings
        try:
            operations = json.loads(body)
        except ValueError:
            return None  # strawberry answers malformed JSON
        if not isinstance(operations, list):
            return None
        if not settings.batching:
            message = "Batched requests (a JSON array) are off; send one operation per request."
        elif len(operations) > settings.max_batch:
            message = f"A batch may hold at most {settings.max_batch} operations; this one has {len(operations)}."
        else:
            return None
        await record_refusal(ctx, operations, LIMIT_EXCEEDED, message)
        return error_response(400, message, LIMIT_EXCEEDED)
