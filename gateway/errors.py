"""Typed domain errors. Each maps to one contract `ErrorCode`; schema/ turns them
into a `UserError` in a mutation payload (or a GraphQL error for queries).

A service raises one of these *before* or *instead of* committing, so a payload
with errors always means nothing changed.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "INVALID_INPUT"

    def __init__(self, message: str, *, field: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    code = "INVALID_INPUT"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class IdempotencyKeyReused(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"


class InvalidState(DomainError):
    code = "INVALID_STATE"


class InsufficientPoints(DomainError):
    code = "INSUFFICIENT_POINTS"


class InvalidMemberCode(DomainError):
    code = "INVALID_MEMBER_CODE"


class MemberCodeExpired(DomainError):
    code = "MEMBER_CODE_EXPIRED"


class MemberSuspended(DomainError):
    code = "MEMBER_SUSPENDED"


class NoAgreement(DomainError):
    code = "NO_AGREEMENT"


class AmountExceedsAuthorized(DomainError):
    code = "AMOUNT_EXCEEDS_AUTHORIZED"


class AmountExceedsCaptured(DomainError):
    code = "AMOUNT_EXCEEDS_CAPTURED"


class ImplausibleActivity(DomainError):
    code = "IMPLAUSIBLE_ACTIVITY"


class CampaignNotActive(DomainError):
    code = "CAMPAIGN_NOT_ACTIVE"


class BudgetExhausted(DomainError):
    code = "BUDGET_EXHAUSTED"


class DigestMismatch(DomainError):
    code = "DIGEST_MISMATCH"


class LimitExceeded(DomainError):
    code = "LIMIT_EXCEEDED"


class UpstreamUnavailable(DomainError):
    code = "UPSTREAM_UNAVAILABLE"
