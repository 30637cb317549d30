"""HTTP endpoints of settlement outside GraphQL.

- `GET /settlements/{id}.json`: a closed settlement's canonical JSON document, the exact
  bytes its digest and signature cover. The URL is the `documentUrl` GraphQL hands out:
  absolute, expiring and HMAC-signed; a changed or expired URL gets 403.
- `POST /reconciliation/v1/reports?agreement=CODE&periodStart=YYYY-MM-DD&periodEnd=YYYY-MM-DD`:
  a reconciliation report too large for one GraphQL request, as `text/csv` (header row
  `reference,kind,amountWon,occurredAt`) or `application/x-ndjson` (one JSON object a
  line), optionally gzip-compressed (`Content-Encoding: gzip`). The body is streamed into
  staging in batches, never held whole; the answer (202) names the RUNNING run, matched in
  the background. Bearer token with `settlements:write`, from an operator party to the agreement.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import zlib
from typing import Any, AsyncIterator

import sqlalchemy as sa
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.resource import InvalidToken
from gateway import audit, documents
from gateway import reconciliation as service
from gateway.errors import InvalidInput, LimitExceeded, NotFound
from gateway.jobs import on_shutdown
from gateway.models import Agreement, ReconciliationRun, Settlement
from gateway.ids import encode_id

log = logging.getLogger(__name__)

UPLOAD_SCOPE = "settlements:write"
CSV_TYPES = {"text/csv", "application/csv"}
NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-lines", "application/jsonlines"}


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status, headers={"Cache-Control": "no-store"})


def settlement_routes(state: Any) -> list[Route]:
    settings, db = state.settings, state.db
    # Background matchings started by this process get a chance to finish when it stops.
    on_shutdown(state, service.finish_pending)

    async def settlement_document(request: Request) -> Response:
        signed, expires, sig = documents.strip_signature(request.url.path, dict(request.query_params))
        if not documents.verify_url(path_with_query=signed, expires=expires, sig=sig, secret_key=settings.secret_key):
            return _error(403, "forbidden", "This document URL is not valid (changed or expired); ask GraphQL for a fresh documentUrl.")
        async with db.session() as session:
            row = await session.get(Settlement, request.path_params["settlement_id"])
        if row is None or row.document is None:
            return _error(404, "not_found", "No closed settlement here.")
        repr_digest = base64.b64encode(hashlib.sha256(row.document).digest()).decode()
        return Response(
            row.document,
            media_type="application/json",
            headers={
                "Repr-Digest": f"sha-256=:{repr_digest}:",
                "Cache-Control": "private, max-age=3600",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def upload_report(request: Request) -> Response:
        try:
            principal = await state.verifier.verify_request(request)
        except InvalidToken as exc:
            return exc.response()
        if principal.partner_kind != "OPERATOR" or not principal.has_scope(UPLOAD_SCOPE):
            response = _error(403, "insufficient_scope", f"An operator's token with the {UPLOAD_SCOPE} scope is needed.")
            response.headers["WWW-Authenticate"] = f'Bearer error="insufficient_scope", scope="{UPLOAD_SCOPE}"'
            return response
        params = request.query_params
        try:
            period_start = dt.date.fromisoformat(params.get("periodStart", ""))
            period_end = dt.date.fromisoformat(params.get("periodEnd", ""))
        except ValueError:
            return _error(400, "invalid_request", "periodStart and periodEnd are required, as YYYY-MM-DD")
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type in CSV_TYPES:
            parse = service.parse_csv
        elif media_type in NDJSON_TYPES:
            parse = service.parse_ndjson
        else:
            return _error(415, "unsupported_media_type", "Send text/csv or application/x-ndjson.")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            return _error(415, "unsupported_media_type", "Content-Encoding may be gzip or none.")
        async with db.session() as session:
            agreement = (
                await session.execute(sa.select(Agreement).where(Agreement.code == params.get("agreement", "")))
            ).scalar_one_or_none()
        if agreement is None or principal.partner_id not in (agreement.operator_a_id, agreement.operator_b_id):
            return _error(404, "not_found", "No agreement with this code.")

        body = request.stream() if encoding == "identity" else _gunzip(request.stream())
        outcome, response = "OK", None
        try:
            run_id = await service.stage_report(
                db=db,
                agreement_id=agreement.id,
                partner_id=principal.partner_id,
                period_start=period_start,
                period_end=period_end,
                records=parse(service.iter_lines(body)),
                max_records=settings.reconciliation_max_records,
            )
        except LimitExceeded as exc:
            outcome, response = exc.code, _error(413, "too_many_records", exc.message)
        except (InvalidInput, NotFound) as exc:
            outcome, response = exc.code, _error(400, "invalid_request", exc.message)
        except (ClientDisconnect, zlib.error, UnicodeDecodeError) as exc:
            outcome, response = "INVALID_INPUT", _error(400, "invalid_request", f"The body could not be read ({type(exc).__name__}).")
        await _audit(db, principal, outcome)
        if response is not None:
            return response
        service.start_matching(db=db, run_id=run_id)
        async with db.session() as session:
            run = await session.get(ReconciliationRun, run_id)
        return JSONResponse(
            {
                "run": {
                    "id": encode_id("ReconciliationRun", run_id),
                    "status": run.status.value,
                    "partnerRecords": str(run.partner_records),
                }
            },
            status_code=202,
        )

    return [
        Route("/settlements/{settlement_id:int}.json", settlement_document, methods=["GET"]),
        Route("/reconciliation/v1/reports", upload_report, methods=["POST"]),
    ]


async def _gunzip(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    async for chunk in chunks:
        # Bounded output per step: a small compressed chunk may inflate enormously.
        data = inflater.decompress(chunk, 1 << 20)
        while data:
            yield data
            data = inflater.decompress(inflater.unconsumed_tail, 1 << 20) if inflater.unconsumed_tail else b""
    tail = inflater.flush()
    if tail:
        yield tail


async def _audit(db, principal, outcome: str) -> None:
    try:
        async with db.transaction() as session:
            await audit.record(
                session=session,
                client_id=principal.client_id,
                partner_id=principal.partner_id,
                operation="uploadReconciliationReport",
                outcome=outcome,
            )
    except Exception:  # noqa: BLE001 - auditing never changes the answer
        log.exception("could not audit a reconciliation upload")
