"""The schema's extensions: limits, validation cache, audit log, metrics; and `GatewaySchema`.

Every extension is handed to strawberry as a class or a factory, so each request
gets instances of its own (shared instances would leak state between concurrent
requests).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import strawberry
from graphql import FieldNode, GraphQLError, OperationType
from graphql.language import DocumentNode, Lexer, Source, TokenKind, parse
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension, ValidationCache

from gateway import audit, metrics
from schema.errors import Recorded, classify
from schema.fragments import root_fields
from schema.limits import GraphQLLimits, TokenLimit, tag_limit_errors
from schema.overload import mark_unavailable

log = logging.getLogger("gateway.audit")

VALIDATION_CACHE_SIZE = 256


class GatewaySchema(strawberry.Schema):
    """strawberry's Schema; every error passes `process_errors` before it is returned,
    on every path (parse, validation, execution), so limit errors get their code here
    and suggestions are stripped outside development.

    Every error leaves with an `extensions.code` (`schema.errors.classify`); an unexpected
    exception is answered as INTERNAL with an `errorId` and logged with its traceback under
    that id, in development too (GATEWAY_DEBUG_ERRORS shows its message there). Refusals,
    validation failures and domain errors are not logged: they are the client's doing,
    and logging each would let any client fill the logs. (strawberry's MaskErrors
    extension would mask too, but it runs after this hook has logged, so it could not put
    the logged id in the answer, and it drops every extension, codes included.)"""

    def process_errors(self, errors: list[GraphQLError], execution_context=None) -> None:
        settings = getattr(getattr(execution_context, "context", None), "settings", None)
        development = bool(getattr(settings, "development", False))
        tag_limit_errors(errors, hide_suggestions=not development)
        mark_unavailable(errors, execution_context)  # no database connection in time: UNAVAILABLE, 503
        classify(errors, show_internal=development and bool(getattr(settings, "debug_errors", False)))


def default_extensions() -> list:
    return [
        GraphQLLimits,
        TokenLimit,
        lambda: ValidationCache(maxsize=VALIDATION_CACHE_SIZE),
        AuditLog,
        OperationMetrics,
    ]


# ---------------------------------------------------------------- what an operation was


def _operation(context) -> Any:
    document: DocumentNode | None = context.graphql_document
    if document is None:
        return None
    try:
        return get_operation_ast(document, context.operation_name)
    except Exception:  # noqa: BLE001 - a malformed document simply has no operation
        return None


def _root_fields(document: DocumentNode, selection_set) -> list[FieldNode]:
    # Each fragment once, as execution collects them: following every spread anew cost
    # 2^k for k fragments each spreading the next twice (schema/fragments.py).
    return root_fields(document, selection_set)


def _looks_like_mutation(query: str | None) -> bool:
    """For a document that could not be parsed: does an operation at its top level say `mutation`?

    Reads at most a few hundred tokens, so a document refused for its size stays cheap."""
    if not query:
        return False
    try:
        lexer = Lexer(Source(query[:20_000]))
        depth = 0
        for _ in range(400):
            token = lexer.advance()
            if token.kind == TokenKind.EOF:
                return False
            if token.kind in (TokenKind.BRACE_L, TokenKind.PAREN_L, TokenKind.BRACKET_L):
                depth += 1
            elif token.kind in (TokenKind.BRACE_R, TokenKind.PAREN_R, TokenKind.BRACKET_R):
                depth -= 1
            elif depth == 0 and token.kind == TokenKind.NAME and token.value == "mutation":
                return True
    except GraphQLError:
        return False
    return False


def _code(error: GraphQLError, default: str) -> str:
    return (error.extensions or {}).get("code") or default


def _errors(context) -> list[GraphQLError]:
    result = context.result
    return list((getattr(result, "errors", None) if result is not None else None) or context.pre_execution_errors or [])


# ---------------------------------------------------------------- the audit log


class AuditLog(SchemaExtension):
    """After each operation: one audit event per mutation field, run or refused.

    Run fields come from `ctx.audit` (written by `schema.errors.mutate`: "OK" or the
    UserError code). A field refused by a permission check carries its error's code
    (FORBIDDEN); an operation refused as a whole (a limit, a validation failure, an
    unparsable document) records each of its fields with that refusal. A field that
    committed wrote its own event in its transaction (a `Recorded` note) and is skipped;
    the others are written in a transaction of their own, before the response leaves,
    unsealed and without any lock (gateway/audit.py).
    """

    async def on_operation(self) -> AsyncIterator[None]:
        ctx = self.execution_context.context
        start = len(getattr(ctx, "audit", ()))
        try:
            yield
        finally:
            if getattr(ctx, "db", None) is not None:
                try:
                    await self._write(ctx, start)
                except Exception:  # noqa: BLE001 - the operation is done; losing its audit row is logged loudly
                    log.exception("could not write the audit log for an operation")

    def _events(self, ctx, start: int) -> list[tuple[str, str, str | None]]:
        """The events still to write: each mutation field's, minus those already `Recorded`."""
        return [(name, outcome, detail) for name, outcome, detail, done in self._all_events(ctx, start) if not done]

    def _all_events(self, ctx, start: int) -> list[tuple[str, str, str | None, bool]]:
        context = self.execution_context
        ran = [(note[0], note[1], isinstance(note, Recorded)) for note in getattr(ctx, "audit", [])[start:]]
        errors = _errors(context)
        operation = _operation(context)
        if operation is None:
            if context.graphql_document is None and _looks_like_mutation(context.query):
                error = errors[0] if errors else None
                outcome = _code(error, "GRAPHQL_PARSE_FAILED") if error else "GRAPHQL_PARSE_FAILED"
                return [("(unparsed mutation)", outcome, error.message[:500] if error else None, False)]
            return [(name, outcome, None, done) for name, outcome, done in ran]
        if operation.operation != OperationType.MUTATION:
            return [(name, outcome, None, done) for name, outcome, done in ran]

        # An error without a path refused the whole operation (a limit, validation, variables).
        pre_error = next((e for e in errors if not e.path), None)
        events: list[tuple[str, str, str | None, bool]] = []
        for field in _root_fields(context.graphql_document, operation.selection_set):
            name = field.name.value
            key = field.alias.value if field.alias else name
            done = next((i for i, (op, _, _) in enumerate(ran) if op == name), None)
            if done is not None:
                _, outcome, recorded = ran.pop(done)
                events.append((name, outcome, None, recorded))
                continue
            error = next((e for e in errors if e.path and e.path[0] == key), None)
            if error is not None:
                events.append((name, _code(error, "INTERNAL_ERROR"), error.message[:500], False))
            elif pre_error is not None:
                events.append((name, _code(pre_error, "GRAPHQL_VALIDATION_FAILED"), pre_error.message[:500], False))
        events.extend((name, outcome, None, done) for name, outcome, done in ran)
        return events

    async def _write(self, ctx, start: int) -> None:
        await write_events(ctx, self._events(ctx, start))


Event = tuple[str, str, "str | None"]


async def write_events(ctx, events: list[Event]) -> None:
    """(operation, outcome, detail) events for the request's client, in one transaction
    (unsealed inserts: no lock, the sealer chains them later)."""
    if not events:
        return
    principal = getattr(ctx, "principal", None)
    client_id = principal.client_id if principal else "(anonymous)"
    partner_id = principal.partner_id if principal else None
    async with ctx.db.transaction() as session:
        for operation, outcome, detail in events:
            await audit.record(
                session=session,
                client_id=client_id,
                partner_id=partner_id,
                operation=operation,
                outcome=outcome,
                detail=detail,
            )
    for _, outcome, _ in events:
        metrics.AUDIT_EVENTS.labels(outcome).inc()


def refused_events(query: Any, operation_name: Any, outcome: str, detail: str, *, max_tokens: int) -> list[Event]:
    """Audit events for an operation refused before strawberry ran it: one per mutation field."""
    if not isinstance(query, str):
        return []
    try:
        document = parse(query, max_tokens=max_tokens)
        operation = get_operation_ast(document, operation_name if isinstance(operation_name, str) else None)
    except GraphQLError:
        return [("(unparsed mutation)", outcome, detail)] if _looks_like_mutation(query) else []
    if operation is None or operation.operation != OperationType.MUTATION:
        return []
    return [(field.name.value, outcome, detail) for field in _root_fields(document, operation.selection_set)]


async def record_refusal(ctx, operations: list[dict], outcome: str, detail: str, *, limit: int = 50) -> None:
    """Audit the mutations of operations (`{"query", "operationName"}` dicts) refused whole,
    at most `limit` events, so a huge refused batch cannot flood the log."""
    events: list[Event] = []
    for item in operations:
        if len(events) >= limit or not isinstance(item, dict):
            break
        events.extend(
            refused_events(
                item.get("query"), item.get("operationName"), outcome, detail, max_tokens=ctx.settings.max_tokens
            )
        )
    await write_events(ctx, events[:limit])


# ---------------------------------------------------------------- metrics


class OperationMetrics(SchemaExtension):
    """Counts and times GraphQL operations by type and outcome."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            context = self.execution_context
            operation = _operation(context)
            kind = operation.operation.value if operation is not None else "unknown"
            result = context.result
            data = getattr(result, "data", None) if result is not None else None
            errors = _errors(context)
            outcome = "ok" if not errors else ("error" if data is not None else "refused")
            metrics.GRAPHQL_OPERATIONS.labels(kind, outcome).inc()
            metrics.GRAPHQL_DURATION.labels(kind).observe(time.perf_counter() - started)
            if operation is not None and data is not None:
                for field in _root_fields(context.graphql_document, operation.selection_set):
                    metrics.GRAPHQL_ROOT_FIELDS.labels(kind, field.name.value).inc()
