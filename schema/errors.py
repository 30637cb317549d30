"""Domain errors as the contract shows them: `UserError` in payloads, coded GraphQL errors elsewhere;
and `classify`, which gives every GraphQL error a code and masks the unexpected ones."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import audit, metrics
from gateway.errors import DomainError
from schema.rest_errors import INTERNAL, INTERNAL_MESSAGE, log_internal
from schema.scalars import InvalidScalar


@strawberry.enum
class ErrorCode(enum.Enum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    INVALID_STATE = "INVALID_STATE"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    INVALID_MEMBER_CODE = "INVALID_MEMBER_CODE"
    MEMBER_CODE_EXPIRED = "MEMBER_CODE_EXPIRED"
    MEMBER_SUSPENDED = "MEMBER_SUSPENDED"
    NO_AGREEMENT = "NO_AGREEMENT"
    AMOUNT_EXCEEDS_AUTHORIZED = "AMOUNT_EXCEEDS_AUTHORIZED"
    AMOUNT_EXCEEDS_CAPTURED = "AMOUNT_EXCEEDS_CAPTURED"
    IMPLAUSIBLE_ACTIVITY = "IMPLAUSIBLE_ACTIVITY"
    CAMPAIGN_NOT_ACTIVE = "CAMPAIGN_NOT_ACTIVE"
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"


@strawberry.type
class UserError:
    code: ErrorCode
    message: str
    field: list[str] | None = strawberry.field(
        default=None, description='Path to the input field at fault, e.g. ["input", "amountWon"].'
    )

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        return cls(code=ErrorCode(error.code), message=error.message, field=error.field)


def graphql_error(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def forbidden(message: str = "Not allowed for this client.") -> GraphQLError:
    return graphql_error("FORBIDDEN", message)


T = TypeVar("T")
P = TypeVar("P")


class Recorded(tuple):
    """An audit note `(operation, outcome)` whose event is already committed (with its
    mutation), so the AuditLog extension does not write it again."""


async def _record_with(session: AsyncSession, ctx, operation: str) -> None:
    principal = getattr(ctx, "principal", None)
    await audit.record(
        session=session,
        client_id=principal.client_id if principal else "(anonymous)",
        partner_id=principal.partner_id if principal else None,
        operation=operation,
        outcome="OK",
    )


async def mutate(
    info,
    work: Callable[[AsyncSession], Awaitable[T]],
    payload: Callable[[T | None, list[UserError]], P],
) -> P:
    """Run one mutation's service call in one transaction and shape its payload.

    A mutation that succeeds writes its audit event ("OK") in that same transaction, so
    it is audited exactly when it commits. A DomainError rolls the transaction back
    (nothing changed) and becomes the payload's `errors`; that refusal is noted for the
    audit log, which the AuditLog extension writes after the operation.
    """
    ctx = info.context
    try:
        async with ctx.db.transaction() as session:
            value = await work(session)
            await _record_with(session, ctx, info.field_name)
    except DomainError as exc:
        ctx.audit.append((info.field_name, exc.code))
        return payload(None, [UserError.of(exc)])
    ctx.audit.append(Recorded((info.field_name, "OK")))
    metrics.AUDIT_EVENTS.labels("OK").inc()
    await ctx.after_write()
    return payload(value, [])


# ---------------------------------------------------------------- every error with a code

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"

#: graphql-core's own wording for a variable value it could not coerce (the value is the
#: client's; the message only echoes it).
_VARIABLE_VALUE = ("Variable '$",)
_BAD_VARIABLE = (" invalid value", "of required type", "of non-null type")


def _root_cause(error: GraphQLError) -> BaseException | None:
    """The innermost exception behind `error` (graphql-core wraps a resolver's or a
    scalar parser's exception in one or two GraphQLErrors)."""
    cause: BaseException | None = error.original_error
    while isinstance(cause, GraphQLError) and cause.original_error is not None:
        cause = cause.original_error
    return cause


def _client_code(error: GraphQLError, cause: BaseException | None) -> str | None:
    """The code of an error the client's request caused, or None if it is the gateway's fault."""
    if isinstance(cause, DomainError):
        return cause.code
    if isinstance(cause, InvalidScalar):
        return "INVALID_INPUT"
    if cause is not None and not isinstance(cause, GraphQLError):
        return None  # an exception escaped: a bug or an outage
    if error.path:
        return None  # an execution error without a code (e.g. null for a non-null field)
    message = error.message
    if message.startswith("Syntax Error"):
        return PARSE_FAILED
    if message.startswith(_VARIABLE_VALUE) and any(part in message for part in _BAD_VARIABLE):
        return "INVALID_INPUT"
    return VALIDATION_FAILED


def classify(errors: list[GraphQLError], *, show_internal: bool = False) -> None:
    """Give every error an `extensions.code`, in place; leave coded ones as they are.

    An error the client caused gets the code of its kind (a domain error's own,
    INVALID_INPUT for a refused value, GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED).
    Anything else is the gateway's fault: its message, which may carry SQL text and bound
    parameters, is replaced by a generic one with code INTERNAL and a random `errorId`,
    and the original is logged with its traceback under that id. `show_internal`
    (development only, GATEWAY_DEBUG_ERRORS) keeps the original message as well."""
    for error in errors:
        if (error.extensions or {}).get("code"):
            continue
        cause = _root_cause(error)
        code = _client_code(error, cause)
        if code is not None:
            error.extensions = {**(error.extensions or {}), "code": code}
            continue
        path = ".".join(str(p) for p in error.path or ()) or "(operation)"
        error_id = log_internal(cause, path, error.message)
        if not show_internal:
            error.message = INTERNAL_MESSAGE
        error.extensions = {"code": INTERNAL, "errorId": error_id}
