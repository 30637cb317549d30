"""The contract's scopes and which partner kinds may hold each."""

from __future__ import annotations

SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset({"ADMIN"}),
    "members:read": frozenset({"OPERATOR"}),
    "activity:write": frozenset({"OPERATOR"}),
    "codes:issue": frozenset({"OPERATOR"}),
    "redemptions:write": frozenset({"MERCHANT"}),
    "redemptions:read": frozenset({"MERCHANT", "OPERATOR"}),
    "exchange:write": frozenset({"OPERATOR"}),
    "campaigns:write": frozenset({"SPONSOR", "OPERATOR"}),
    "donations:write": frozenset({"OPERATOR"}),
    "donations:read": frozenset({"OPERATOR", "SPONSOR", "BENEFICIARY", "ADMIN"}),
    "statements:read": frozenset({"SPONSOR", "BENEFICIARY"}),
    "settlements:read": frozenset({"OPERATOR"}),
    "settlements:write": frozenset({"OPERATOR"}),
    "connectors:write": frozenset({"OPERATOR", "SPONSOR"}),
    "webhooks:manage": frozenset({"OPERATOR", "MERCHANT", "SPONSOR", "BENEFICIARY", "ADMIN"}),
    # Rotating a secret or disabling a client hands over (or takes away) a sibling's
    # grant, so it is a scope of its own that only ADMIN hands out (at createClient).
    "clients:manage": frozenset({"OPERATOR", "MERCHANT", "SPONSOR", "BENEFICIARY", "ADMIN"}),
    # The gateway's own (not the contract's): GET /metrics, for the program office's monitoring.
    "metrics:read": frozenset({"ADMIN"}),
}


def scopes_for_kind(kind: str) -> list[str]:
    """Every scope a partner of this kind may be registered for (ADMIN: all of them)."""
    if kind == "ADMIN":
        return sorted(SCOPES)
    return sorted(scope for scope, kinds in SCOPES.items() if kind in kinds)


def invalid_scopes(kind: str, scopes: list[str]) -> list[str]:
    allowed = set(scopes_for_kind(kind))
    return [s for s in scopes if s not in allowed]
