"""Domain errors as the contract shows them: `UserError` in payloads, coded GraphQL errors elsewhere."""
from __future__ import annotations

import enum
from typing import Awaitable, Callable, Optional, TypeVar

import strawberry
from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import DomainError


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
    field: Optional[list[str]] = strawberry.field(
        default=None, description='Path to the input field at fault, e.g. ["input", "amountWon"].'
    )

    @classmethod
    def of(cls, error: DomainError) -> "UserError":
        return cls(code=ErrorCode(error.code), message=error.message, field=error.field)


def graphql_error(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def forbidden(message: str = "Not allowed for this client.") -> GraphQLError:
    return graphql_error("FORBIDDEN", message)


T = TypeVar("T")
P = TypeVar("P")


async def mutate(
    info,
    work: Callable[[AsyncSession], Awaitable[T]],
    payload: Callable[[T | None, list[UserError]], P],
) -> P:
    """Run one mutation's service call in one transaction and shape its payload.

    A DomainError rolls the transaction back (nothing changed) and becomes the
    payload's `errors`; the outcome of every mutation is noted for the audit log.
    """
    ctx = info.context
    try:
        async with ctx.db.transaction() as session:
            value = await work(session)
    except DomainError as exc:
        ctx.audit.append((info.field_name, exc.code))
        return payload(None, [UserError.of(exc)])
    ctx.audit.append((info.field_name, "OK"))
    await ctx.after_write()
    return payload(value, [])
