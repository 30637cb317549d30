"""Scope, partner-kind and tenancy checks: the one place every field uses.

Fields declare what they need with `needs(scope, *kinds)`. A failure is a
GraphQL error with `extensions.code = FORBIDDEN` and the field's data null.
Reading another tenant's object by id answers exactly as an unknown id
(`NOT_FOUND` / null), so ids cannot be probed; `visible_to()` decides that.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from auth.principal import Principal
from schema.errors import forbidden

ADMIN, OPERATOR, MERCHANT, SPONSOR, BENEFICIARY = "ADMIN", "OPERATOR", "MERCHANT", "SPONSOR", "BENEFICIARY"
ALL_KINDS = (ADMIN, OPERATOR, MERCHANT, SPONSOR, BENEFICIARY)


class Needs(BasePermission):
    """The caller holds `scope` (or `admin`) and its partner is one of `kinds` (ADMIN always passes)."""

    message = "Not allowed for this client."
    error_extensions = {"code": "FORBIDDEN"}

    def __init__(self, scope: str | None, kinds: Iterable[str]) -> None:
        self.scope = scope
        self.kinds = frozenset(kinds)

    def has_permission(self, source: Any, info, **kwargs: Any) -> bool:
        principal = info.context.principal
        if principal is None:
            return False
        if principal.is_admin:
            return True
        if principal.partner_kind not in self.kinds:
            return False
        return self.scope is None or principal.has_scope(self.scope)

    def on_unauthorized(self) -> None:  # noqa: D401 - strawberry hook
        super().on_unauthorized()


class Forbidden(Exception):
    pass


def needs(scope: str | None, *kinds: str) -> list[FieldExtension]:
    """Field extensions for `@strawberry.field(extensions=needs("members:read", OPERATOR))`.

    With no kinds, every partner kind may call it (with the scope)."""
    return [PermissionExtension(permissions=[Needs(scope, kinds or ALL_KINDS)], use_directives=False)]


def principal_of(info) -> Principal:
    principal = info.context.principal
    if principal is None:  # /graphql refuses unauthenticated requests before this
        raise forbidden()
    return principal


def visible_to(principal: Principal, *partner_ids: int | None) -> bool:
    """Tenancy: the caller is ADMIN or is one of the partners the object names."""
    return principal.is_admin or principal.partner_id in {p for p in partner_ids if p is not None}


def require_admin_or_self(info, partner_id: int) -> Principal:
    principal = principal_of(info)
    if not visible_to(principal, partner_id):
        raise forbidden()
    return principal
