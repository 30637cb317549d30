"""Operator queries: one of its members, with balance, activity and ledger entries."""

from __future__ import annotations

import strawberry

from gateway import members as member_service
from gateway import partners as partner_service
from gateway.models import Account, OwnerKind, PartnerKind
from gateway.models import LedgerEntry as LedgerEntryRow
from gateway.models import Member as MemberRow
from schema.errors import graphql_error
from schema.node import node_resolver
from schema.permissions import OPERATOR, needs, principal_of, visible_to
from schema.types.members import LedgerEntry, Member


@node_resolver("Member")
async def _member_node(info, pk: int) -> Member | None:
    row = await info.context.session.get(MemberRow, pk)
    if row is None or not visible_to(principal_of(info), row.operator_id):
        return None
    return Member.from_model(row)


@node_resolver("LedgerEntry")
async def _ledger_entry_node(info, pk: int) -> LedgerEntry | None:
    """An entry of a member's wallet, for the member's operator (as `member { entries }` shows it).
    Entries of the program's own accounts (issuance, clearing, ...) are no partner's: None."""
    session = info.context.session
    row = await session.get(LedgerEntryRow, pk)
    account = await session.get(Account, row.account_id) if row is not None else None
    if account is None or account.owner_kind != OwnerKind.MEMBER:
        return None
    member = await session.get(MemberRow, account.owner_id)
    if member is None or not visible_to(principal_of(info), member.operator_id):
        return None
    return LedgerEntry.from_model(row)


@strawberry.type
class Query:
    @strawberry.field(
        description="OPERATOR: one of its own members. ADMIN: any member, operatorCode required.",
        extensions=needs("members:read", OPERATOR),
    )
    async def member(self, info: strawberry.Info, external_id: str, operator_code: str | None = None) -> Member | None:
        principal = principal_of(info)
        session = info.context.session
        if principal.is_admin:
            if operator_code is None:
                raise graphql_error("INVALID_INPUT", "ADMIN must name the member's operator: operatorCode")
            operator = await partner_service.get_by_code(session, operator_code)
            if operator is None or operator.kind != PartnerKind.OPERATOR:
                return None
            operator_id = operator.id
        else:
            # An operator sees only its own members; naming another operator finds nothing.
            if operator_code is not None and operator_code != principal.partner_code:
                return None
            operator_id = principal.partner_id
        return Member.from_model(await member_service.get_member(session, operator_id, external_id))
