"""The point-of-sale REST face: checkout as JSON over HTTP, for POS systems without GraphQL.

    POST /pos/v1/payments                 authorize (optional "capture": true)   201
    POST /pos/v1/payments/{id}/capture    capture all or part                    200
    POST /pos/v1/payments/{id}/void       release the hold                       200
    POST /pos/v1/payments/{id}/refunds    refund part or all                     200
    GET  /pos/v1/payments/{id}            one payment                            200
    GET  /pos/v1/payments?orderId=...     find payments (after a lost reply)     200
    GET  /pos/v1/openapi.yaml             the OpenAPI 3.1 document (pos_openapi.yaml)

The same bearer tokens as /graphql (scope `redemptions:write` for POSTs, `redemptions:read`
for GETs, partner kind MERCHANT), the same per-client rate limits, the same services
(`gateway.redemption`) in one transaction per request, idempotent by the `Idempotency-Key`
header. A payment's `id` is its GraphQL `Redemption` id. Errors are
`{"error": {"code", "message", "field"}}` with the contract's codes:

    400 INVALID_INPUT (malformed request)      401 UNAUTHENTICATED     403 FORBIDDEN
    404 NOT_FOUND                              409 INVALID_STATE, IDEMPOTENCY_KEY_REUSED
    422 business refusals (INSUFFICIENT_POINTS, INVALID_MEMBER_CODE, ...)   429 LIMIT_EXCEEDED

Mount with `pos_routes(state)` (gateway/app.py does).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.principal import Principal
from auth.resource import InvalidToken
from gateway import audit
from gateway import redemption as redemption_service
from gateway.db import utcnow
from gateway.errors import DomainError
from gateway.idempotency import KEY_MAX
from gateway.ids import decode_pk, encode_id
from gateway.models import Partner, Redemption, RedemptionStatus
from gateway.ratelimit import ClientLimiter
from gateway.untrusted import BIGINT_MAX, UNSTORABLE, UntrustedInput, loads, storable, unstorable_path, whole_number
from schema.http import BodyTooLarge, read_body
from schema.rest_errors import internal_error, show_internal

log = logging.getLogger("connectors.pos_rest")

OPENAPI_PATH = Path(__file__).with_name("pos_openapi.yaml")
PREFIX = "/pos/v1"

#: HTTP status for each error code.
STATUS = {
    "INVALID_INPUT": 422,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "IDEMPOTENCY_KEY_REUSED": 409,
    "INVALID_STATE": 409,
    "INSUFFICIENT_POINTS": 422,
    "INVALID_MEMBER_CODE": 422,
    "MEMBER_CODE_EXPIRED": 422,
    "MEMBER_SUSPENDED": 422,
    "NO_AGREEMENT": 422,
    "AMOUNT_EXCEEDS_AUTHORIZED": 422,
    "AMOUNT_EXCEEDS_CAPTURED": 422,
    "LIMIT_EXCEEDED": 429,
}


class Refusal(Exception):
    """An answer other than success, raised anywhere in a handler."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: list[str] | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field
        self.status = status or STATUS.get(code, 400)
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.field, self.headers)


def error_response(
    status: int, code: str, message: str, field: list[str] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "field": field}}, status_code=status, headers=headers
    )


def _field(field: list[str] | None) -> list[str] | None:
    """A service's GraphQL-style path (["input", "amountWon"]) as the JSON body's (["amountWon"])."""
    if field and field[0] == "input":
        field = field[1:]
    return list(field) if field else None


def payment_json(r: Redemption, merchant_code: str, member_operator_code: str) -> dict[str, Any]:
    """A redemption as the REST face shows it (see `Payment` in pos_openapi.yaml)."""
    return {
        "id": encode_id("Redemption", r.id),
        "reference": r.reference,
        "merchant": merchant_code,
        "memberOperator": member_operator_code,
        "orderId": r.order_id,
        "status": r.status.value,
        "amountWon": r.amount_won,
        "capturedWon": r.captured_won,
        "refundedWon": r.refunded_won,
        "points": r.points,
        "refundedPoints": r.refunded_points,
        "unit": r.unit,
        "createdAt": r.created_at.isoformat(),
        "expiresAt": r.expires_at.isoformat() if r.status == RedemptionStatus.AUTHORIZED else None,
    }


# ---------------------------------------------------------------- request parsing


def _integer(body: dict, name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise Refusal("INVALID_INPUT", f"{name} is required", field=[name], status=400)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refusal("INVALID_INPUT", f"{name} must be a whole number", field=[name], status=400)
    if value > BIGINT_MAX:
        # Beyond what the ledger's 64-bit columns hold; below zero the service refuses (422 too).
        raise Refusal("INVALID_INPUT", f"{name} must be at most {BIGINT_MAX}", field=[name], status=422)
    return value


def _string(body: dict, name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise Refusal("INVALID_INPUT", f"{name} is required", field=[name], status=400)
        return None
    if not isinstance(value, str):
        raise Refusal("INVALID_INPUT", f"{name} must be a string", field=[name], status=400)
    return value


def _check_query(request: Request) -> None:
    """Query parameters the database could not store (a NUL: `?orderId=a%00b`) are refused
    before any handler sees them."""
    for name, value in request.query_params.multi_items():
        if not storable(name) or not storable(value):
            raise Refusal("INVALID_INPUT", f"The parameter {name!r} {UNSTORABLE}.", field=[name], status=400)


def _payment_pk(request: Request) -> int:
    pk = decode_pk(request.path_params["id"], "Redemption")
    if pk is None:
        raise Refusal("NOT_FOUND", "no such payment")
    return pk


class PosApi:
    """The handlers; one instance per application (it holds the rate limiter)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.limiter = ClientLimiter.from_settings(state.settings)

    # ------------------------------------------------------------ plumbing

    async def _principal(self, request: Request, scope: str) -> Principal:
        try:
            principal = await self.state.verifier.verify_request(request)
        except InvalidToken as exc:
            challenge = exc.response().headers.get("www-authenticate", 'Bearer error="invalid_token"')
            raise Refusal(
                "UNAUTHENTICATED",
                exc.description,
                status=401,
                headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
            ) from None
        if principal.partner_kind != "MERCHANT":
            raise Refusal("FORBIDDEN", "Only a MERCHANT uses the point-of-sale API.")
        if not principal.has_scope(scope):
            raise Refusal("FORBIDDEN", f"This needs the scope {scope}.")
        return principal

    async def _body(self, request: Request, *, required: bool) -> dict:
        limit = self.state.settings.max_body_bytes
        try:
            # Read up to the limit and no further (a body without Content-Length included).
            raw = await read_body(request, request.receive, limit)
        except BodyTooLarge:
            raise Refusal(
                "LIMIT_EXCEEDED",
                f"The request body exceeds {limit} bytes.",
                status=413,
                headers={"Connection": "close"},
            ) from None
        if not raw.strip():
            if required:
                raise Refusal("INVALID_INPUT", "A JSON body is required.", status=400)
            return {}
        try:
            body = loads(raw)
        except UntrustedInput as exc:
            raise Refusal("INVALID_INPUT", str(exc), status=400) from None
        if not isinstance(body, dict):
            raise Refusal("INVALID_INPUT", "The body must be a JSON object.", status=400)
        where = unstorable_path(body)
        if where is not None:
            field = None if where == "(body)" else [where.split(".")[0].split("[")[0]]
            raise Refusal("INVALID_INPUT", f"{where} {UNSTORABLE}", field=field, status=400)
        return body

    @staticmethod
    def _only(body: dict, allowed: set[str]) -> None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise Refusal("INVALID_INPUT", f"Unknown field {unknown[0]!r}.", field=[unknown[0]], status=400)

    @staticmethod
    def _idempotency_key(request: Request) -> str:
        key = request.headers.get("idempotency-key")
        if key is None or not key.strip() or len(key) > KEY_MAX:
            raise Refusal(
                "INVALID_INPUT",
                f"An Idempotency-Key header (1 to {KEY_MAX} characters) is required.",
                field=["Idempotency-Key"],
                status=400,
            )
        return key

    async def _json(self, session, r: Redemption, status: int) -> JSONResponse:
        merchant = await session.get(Partner, r.merchant_id)
        operator = await session.get(Partner, r.member_operator_id)
        return JSONResponse(payment_json(r, merchant.code, operator.code), status_code=status)

    async def _guarded(
        self, request: Request, scope: str, handler: Callable[[Principal], Awaitable[Response]]
    ) -> Response:
        try:
            principal = await self._principal(request, scope)
            _check_query(request)
        except Refusal as refusal:
            return refusal.response()
        except Exception as exc:  # noqa: BLE001 - e.g. the token store unreachable: masked, never shown
            return internal_error(request, exc, show_internal=show_internal(self.state.settings))
        limited = self.limiter.admit(principal.client_id)
        if limited is not None:
            return error_response(
                429, "LIMIT_EXCEEDED", limited.message, headers={"Retry-After": str(limited.retry_after)}
            )
        try:
            return await handler(principal)
        except Refusal as refusal:
            return refusal.response()
        except Exception as exc:  # noqa: BLE001 - masked: a generic message, INTERNAL and an errorId in the log
            return internal_error(request, exc, show_internal=show_internal(self.state.settings))
        finally:
            self.limiter.release(principal.client_id)

    async def _mutation(self, request: Request, operation: str, work) -> Response:
        """Authenticate, parse, run `work(session, principal, key, body)` in one transaction,
        and write the outcome to the audit log (as /graphql does for mutations): an accepted
        call's event in its own transaction, a refused one's in a small one after it."""

        async def handle(principal: Principal) -> Response:
            key = self._idempotency_key(request)
            body = await self._body(request, required=False)
            try:
                async with self.state.db.transaction() as session:
                    response = await work(session, principal, key, body)
                    # Audited in the payment's own transaction: committed exactly when audited.
                    await audit.record(
                        session=session,
                        client_id=principal.client_id,
                        partner_id=principal.partner_id,
                        operation=f"pos.{operation}",
                        outcome="OK",
                    )
                return response
            except DomainError as exc:
                outcome = exc.code
                response = error_response(STATUS.get(exc.code, 422), exc.code, exc.message, _field(exc.field))
            except Refusal as refusal:
                outcome = refusal.code
                response = refusal.response()
            except Exception:
                await self._audit(principal, operation, "INTERNAL")
                raise  # `_guarded` masks it
            await self._audit(principal, operation, outcome)
            return response

        return await self._guarded(request, "redemptions:write", handle)

    async def _audit(self, principal: Principal, operation: str, outcome: str) -> None:
        try:
            async with self.state.db.transaction() as session:
                await audit.record(
                    session=session,
                    client_id=principal.client_id,
                    partner_id=principal.partner_id,
                    operation=f"pos.{operation}",
                    outcome=outcome,
                )
        except Exception:  # noqa: BLE001 - the payment is done; a lost audit row is logged loudly
            log.exception("could not write the audit log for pos.%s", operation)

    # ------------------------------------------------------------ endpoints

    async def create_payment(self, request: Request) -> Response:
        async def work(session, principal, key, body):
            if not body:
                raise Refusal("INVALID_INPUT", "A JSON body is required.", status=400)
            self._only(body, {"memberCode", "amountWon", "orderId", "capture"})
            capture = body.get("capture", False)
            if not isinstance(capture, bool):
                raise Refusal("INVALID_INPUT", "capture must be true or false", field=["capture"], status=400)
            r = await redemption_service.authorize(
                session=session,
                merchant_id=principal.partner_id,
                code=_string(body, "memberCode", required=True),
                amount_won=_integer(body, "amountWon", required=True),
                order_id=_string(body, "orderId", required=True),
                idempotency_key=key,
                capture=capture,
                hold_ttl_seconds=self.state.settings.hold_ttl_seconds,
                now=utcnow(),
            )
            return await self._json(session, r, 201)

        return await self._mutation(request, "authorizeRedemption", work)

    async def capture(self, request: Request) -> Response:
        async def work(session, principal, key, body):
            self._only(body, {"amountWon"})
            r = await redemption_service.capture(
                session=session,
                merchant_id=principal.partner_id,
                redemption_id=_payment_pk(request),
                amount_won=_integer(body, "amountWon", required=False),
                idempotency_key=key,
                now=utcnow(),
            )
            return await self._json(session, r, 200)

        return await self._mutation(request, "captureRedemption", work)

    async def void(self, request: Request) -> Response:
        async def work(session, principal, key, body):
            self._only(body, set())
            r = await redemption_service.void(
                session=session,
                merchant_id=principal.partner_id,
                redemption_id=_payment_pk(request),
                idempotency_key=key,
                now=utcnow(),
            )
            return await self._json(session, r, 200)

        return await self._mutation(request, "voidRedemption", work)

    async def refund(self, request: Request) -> Response:
        async def work(session, principal, key, body):
            if not body:
                raise Refusal("INVALID_INPUT", "A JSON body is required.", status=400)
            self._only(body, {"amountWon", "reason"})
            r = await redemption_service.refund(
                session=session,
                merchant_id=principal.partner_id,
                redemption_id=_payment_pk(request),
                amount_won=_integer(body, "amountWon", required=True),
                reason=_string(body, "reason", required=False),
                idempotency_key=key,
                now=utcnow(),
            )
            return await self._json(session, r, 200)

        return await self._mutation(request, "refundRedemption", work)

    async def get_payment(self, request: Request) -> Response:
        async def handle(principal: Principal) -> Response:
            async with self.state.db.session() as session:
                r = await redemption_service.get_redemption(session, _payment_pk(request))
                if r is None or r.merchant_id != principal.partner_id:
                    raise Refusal("NOT_FOUND", "no such payment")
                return await self._json(session, r, 200)

        return await self._guarded(request, "redemptions:read", handle)

    async def list_payments(self, request: Request) -> Response:
        async def handle(principal: Principal) -> Response:
            params = request.query_params
            unknown = sorted(set(params) - {"orderId", "reference", "status", "limit"})
            if unknown:
                raise Refusal("INVALID_INPUT", f"Unknown parameter {unknown[0]!r}.", field=[unknown[0]], status=400)
            status = params.get("status")
            if status is not None and status not in RedemptionStatus.__members__:
                raise Refusal("INVALID_INPUT", "status is not a payment status", field=["status"], status=400)
            limit = whole_number(params.get("limit", "20"), max_digits=3)
            if limit is None or not 1 <= limit <= 100:
                raise Refusal("INVALID_INPUT", "limit must be 1 to 100", field=["limit"], status=400)
            stmt = (
                redemption_service.redemptions_query(
                    partner_id=principal.partner_id,
                    partner_kind="MERCHANT",
                    status=RedemptionStatus(status) if status else None,
                    order_id=params.get("orderId"),
                    reference=params.get("reference"),
                )
                .order_by(Redemption.id.desc())
                .limit(limit)
            )
            async with self.state.db.session() as session:
                rows = (await session.execute(stmt)).scalars().all()
                partner_ids = {principal.partner_id, *(r.member_operator_id for r in rows)}
                codes = dict(
                    (
                        await session.execute(sa.select(Partner.id, Partner.code).where(Partner.id.in_(partner_ids)))
                    ).all()
                )
            return JSONResponse(
                {"payments": [payment_json(r, codes[r.merchant_id], codes[r.member_operator_id]) for r in rows]}
            )

        return await self._guarded(request, "redemptions:read", handle)

    async def openapi(self, request: Request) -> Response:
        return Response(OPENAPI_PATH.read_bytes(), media_type="application/yaml")


def pos_routes(state: Any) -> list[Route]:
    """The REST face's routes, for the application's route list."""
    api = PosApi(state)
    return [
        Route(f"{PREFIX}/openapi.yaml", api.openapi, methods=["GET"]),
        Route(f"{PREFIX}/payments", api.create_payment, methods=["POST"]),
        Route(f"{PREFIX}/payments", api.list_payments, methods=["GET"]),
        Route(f"{PREFIX}/payments/{{id}}", api.get_payment, methods=["GET"]),
        Route(f"{PREFIX}/payments/{{id}}/capture", api.capture, methods=["POST"]),
        Route(f"{PREFIX}/payments/{{id}}/void", api.void, methods=["POST"]),
        Route(f"{PREFIX}/payments/{{id}}/refunds", api.refund, methods=["POST"]),
    ]


__all__ = ["PosApi", "payment_json", "pos_routes"]
