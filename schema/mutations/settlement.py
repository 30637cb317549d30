"""Settlement mutations: close (ADMIN), confirm and dispute (the two operators), and
reconciliation reports and their discrepancies."""

from __future__ import annotations

import sqlalchemy as sa
import strawberry

from gateway import reconciliation as reconciliation_service
from gateway import settlement as settlement_service
from gateway.db import utcnow
from gateway.errors import InvalidInput, LimitExceeded, NotFound
from gateway.models import Agreement as AgreementRow
from gateway.models import FlowKind
from gateway.reconciliation import ReportRecord
from schema.errors import UserError, forbidden, mutate
from schema.ids import decode_pk
from schema.permissions import ADMIN, OPERATOR, needs, principal_of
from schema.scalars import BigInt, Date, DateTime
from schema.types.settlement import Discrepancy, FlowKindEnum, ReconciliationRun, Settlement

#: Records in one submitReconciliationReport; larger reports go to the bulk upload endpoint.
MAX_GRAPHQL_RECORDS = 10_000


@strawberry.input
class CloseSettlementInput:
    agreement_code: str
    period_end: Date = strawberry.field(description="Last day of the period to close.")


@strawberry.input
class ConfirmSettlementInput:
    settlement_id: strawberry.ID
    digest: str = strawberry.field(
        description="The digest the confirming operator computed; it must equal the statement's."
    )


@strawberry.input
class DisputeSettlementInput:
    settlement_id: strawberry.ID
    reason: str


@strawberry.type
class SettlementPayload:
    settlement: Settlement | None
    errors: list[UserError]


@strawberry.input
class ReconciliationRecordInput:
    reference: str = strawberry.field(description="The gateway reference of the movement, as the partner recorded it.")
    kind: FlowKindEnum
    amount_won: BigInt
    occurred_at: DateTime


@strawberry.input
class SubmitReconciliationReportInput:
    agreement_code: str
    period_start: Date
    period_end: Date
    records: list[ReconciliationRecordInput]


@strawberry.type
class ReconciliationPayload:
    run: ReconciliationRun | None
    errors: list[UserError]


@strawberry.input
class ResolveDiscrepancyInput:
    discrepancy_id: strawberry.ID
    resolution: str


@strawberry.type
class DiscrepancyPayload:
    discrepancy: Discrepancy | None
    errors: list[UserError]


def _operator_party(info) -> int:
    """Confirming, disputing and reporting are an operator's own acts (an ADMIN is no party)."""
    principal = principal_of(info)
    if principal.is_admin or principal.partner_kind != "OPERATOR":
        raise forbidden("Only an operator party to the agreement may do this.")
    return principal.partner_id


def _settlement_pk(value: str) -> int:
    pk = decode_pk(value, "Settlement")
    if pk is None:
        raise NotFound("No settlement with this id", field=["input", "settlementId"])
    return pk


NO_AGREEMENT = "No agreement with this code"


async def _agreement(session, code: str, *, party_id: int | None = None) -> AgreementRow:
    """The agreement with `code`; with `party_id`, only if that operator is party to it. An
    agreement of others answers exactly like an unknown code (same query, same error)."""
    stmt = sa.select(AgreementRow).where(AgreementRow.code == code)
    if party_id is not None:
        stmt = stmt.where(sa.or_(AgreementRow.operator_a_id == party_id, AgreementRow.operator_b_id == party_id))
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(NO_AGREEMENT, field=["input", "agreementCode"])
    return row


def _settlement_payload(row, errors: list[UserError]) -> SettlementPayload:
    return SettlementPayload(settlement=Settlement.from_model(row) if row is not None else None, errors=errors)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="ADMIN; periods also close on schedule.", extensions=needs("admin", ADMIN))
    async def close_settlement(self, info: strawberry.Info, input: CloseSettlementInput) -> SettlementPayload:
        signer = info.context.state.keystore

        async def work(session):
            agreement = await _agreement(session, input.agreement_code)
            return await settlement_service.close_settlement(
                session=session, agreement_id=agreement.id, period_end=input.period_end, signer=signer, now=utcnow()
            )

        return await mutate(info, work, _settlement_payload)

    @strawberry.mutation(
        description="OPERATOR party to the agreement.", extensions=needs("settlements:write", OPERATOR)
    )
    async def confirm_settlement(self, info: strawberry.Info, input: ConfirmSettlementInput) -> SettlementPayload:
        partner_id = _operator_party(info)
        return await mutate(
            info,
            lambda session: settlement_service.confirm_settlement(
                session=session,
                settlement_id=_settlement_pk(input.settlement_id),
                partner_id=partner_id,
                digest=input.digest,
            ),
            _settlement_payload,
        )

    @strawberry.mutation(
        description="OPERATOR party to the agreement.", extensions=needs("settlements:write", OPERATOR)
    )
    async def dispute_settlement(self, info: strawberry.Info, input: DisputeSettlementInput) -> SettlementPayload:
        partner_id = _operator_party(info)
        return await mutate(
            info,
            lambda session: settlement_service.dispute_settlement(
                session=session,
                settlement_id=_settlement_pk(input.settlement_id),
                partner_id=partner_id,
                reason=input.reason,
            ),
            _settlement_payload,
        )

    @strawberry.mutation(
        description="OPERATOR party to the agreement.", extensions=needs("settlements:write", OPERATOR)
    )
    async def submit_reconciliation_report(
        self, info: strawberry.Info, input: SubmitReconciliationReportInput
    ) -> ReconciliationPayload:
        partner_id = _operator_party(info)

        async def work(session):
            if len(input.records) > MAX_GRAPHQL_RECORDS:
                raise LimitExceeded(
                    f"At most {MAX_GRAPHQL_RECORDS} records per request; upload larger reports to /reconciliation/v1/reports",
                    field=["input", "records"],
                )
            agreement = await _agreement(session, input.agreement_code, party_id=partner_id)
            run = await reconciliation_service.create_run(
                session=session,
                agreement_id=agreement.id,
                partner_id=partner_id,
                period_start=input.period_start,
                period_end=input.period_end,
            )
            records = [
                ReportRecord(r.reference, FlowKind(r.kind.value), r.amount_won, r.occurred_at) for r in input.records
            ]
            try:
                return await reconciliation_service.stage_records(session=session, run=run, records=records)
            except InvalidInput as exc:
                raise InvalidInput(exc.message, field=["input", "records"]) from None

        payload = await mutate(
            info, work, lambda run, errors: ReconciliationPayload(run=ReconciliationRun.from_model(run), errors=errors)
        )
        if payload.run is not None:
            reconciliation_service.start_matching(db=info.context.db, run_id=payload.run.row.id)
        return payload

    @strawberry.mutation(
        description="ADMIN, or an OPERATOR party to the run's agreement.",
        extensions=needs("settlements:write", OPERATOR),
    )
    async def resolve_discrepancy(self, info: strawberry.Info, input: ResolveDiscrepancyInput) -> DiscrepancyPayload:
        principal = principal_of(info)
        pk = decode_pk(input.discrepancy_id, "Discrepancy")

        async def work(session):
            if pk is None:
                raise NotFound("No discrepancy with this id", field=["input", "discrepancyId"])
            return await reconciliation_service.resolve_discrepancy(
                session=session,
                discrepancy_id=pk,
                partner_id=None if principal.is_admin else principal.partner_id,
                resolved_by_id=principal.partner_id,
                resolution=input.resolution,
            )

        return await mutate(
            info, work, lambda row, errors: DiscrepancyPayload(discrepancy=Discrepancy.from_model(row), errors=errors)
        )
