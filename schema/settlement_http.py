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
  The body is bounded (413 `payload_too_large`): `upload_max_bytes` on the wire, and once
  inflated `upload_max_decompressed_bytes` and `upload_max_compression_ratio` times what was
  read (a decompression bomb stops within its first megabytes). Inflating and parsing give
  the event loop a turn after every chunk, so other requests keep being served meanwhile.

Errors are `{"error": "<code>", "message"}`; an unexpected one is 500 `internal` with an
`errorId` (schema/rest_errors.py).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import zlib
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.resource import InvalidToken
from gateway import audit, documents
from gateway import reconciliation as service
from gateway.errors import InvalidInput, LimitExceeded, NotFound
from gateway.ids import encode_id
from gateway.jobs import on_shutdown
from gateway.models import Agreement, ReconciliationRun, Settlement
from gateway.untrusted import UNSTORABLE, storable
from schema.rest_errors import masked

log = logging.getLogger(__name__)

UPLOAD_SCOPE = "settlements:write"
CSV_TYPES = {"text/csv", "application/csv"}
NDJSON_TYPES = {
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/json-lines",
    "application/jsonlines",
}


#: Inflated bytes per step: small enough that one step never holds the event loop for long.
INFLATE_STEP = 64 * 1024
#: The compression ratio is judged only past this much inflated text (headers, tiny bodies).
RATIO_GRACE = 1024 * 1024


class UploadTooLarge(LimitExceeded):
    """The body (on the wire or inflated) is over a limit of the settings."""


def _error(status: int, error: str, message: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def settlement_routes(state: Any) -> list[Route]:
    settings, db = state.settings, state.db
    # Background matchings started by this process get a chance to finish when it stops.
    on_shutdown(state, service.finish_pending)

    @masked(settings)
    async def settlement_document(request: Request) -> Response:
        signed, expires, sig = documents.strip_signature(request.url.path, dict(request.query_params))
        if not documents.verify_url(path_with_query=signed, expires=expires, sig=sig, secret_key=settings.secret_key):
            return _error(
                403,
                "forbidden",
                "This document URL is not valid (changed or expired); ask GraphQL for a fresh documentUrl.",
            )
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

    @masked(settings)
    async def upload_report(request: Request) -> Response:
        try:
            principal = await state.verifier.verify_request(request)
        except InvalidToken as exc:
            return exc.response()
        if principal.partner_kind != "OPERATOR" or not principal.has_scope(UPLOAD_SCOPE):
            response = _error(
                403, "insufficient_scope", f"An operator's token with the {UPLOAD_SCOPE} scope is needed."
            )
            response.headers["WWW-Authenticate"] = f'Bearer error="insufficient_scope", scope="{UPLOAD_SCOPE}"'
            return response
        params = request.query_params
        if not all(storable(name) and storable(value) for name, value in params.multi_items()):
            return _error(400, "invalid_request", f"A query parameter {UNSTORABLE}.")
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
        declared = request.headers.get("content-length", "")
        if (
            declared.isascii()
            and declared.isdigit()
            and len(declared) < 20
            and int(declared) > settings.upload_max_bytes
        ):
            return _error(
                413,
                "payload_too_large",
                f"The body exceeds {settings.upload_max_bytes} bytes.",
                headers={"Connection": "close"},
            )
        async with db.session() as session:
            agreement = (
                await session.execute(sa.select(Agreement).where(Agreement.code == params.get("agreement", "")))
            ).scalar_one_or_none()
        if agreement is None or principal.partner_id not in (agreement.operator_a_id, agreement.operator_b_id):
            return _error(404, "not_found", "No agreement with this code.")

        body = _bounded(request.stream(), settings.upload_max_bytes)
        if encoding == "gzip":
            body = _gunzip(
                body, max_bytes=settings.upload_max_decompressed_bytes, max_ratio=settings.upload_max_compression_ratio
            )
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
        except UploadTooLarge as exc:
            outcome, response = exc.code, _error(413, "payload_too_large", exc.message, headers={"Connection": "close"})
        except LimitExceeded as exc:
            outcome, response = exc.code, _error(413, "too_many_records", exc.message)
        except (InvalidInput, NotFound) as exc:
            outcome, response = exc.code, _error(400, "invalid_request", exc.message)
        except (ClientDisconnect, zlib.error, UnicodeDecodeError) as exc:
            outcome, response = (
                "INVALID_INPUT",
                _error(400, "invalid_request", f"The body could not be read ({type(exc).__name__})."),
            )
        except Exception:
            await _audit(db, principal, "INTERNAL")
            raise  # masked by @masked, logged with its errorId
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


async def _bounded(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """The body's chunks, refused past `max_bytes` (a chunked body declares no length)."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise UploadTooLarge(f"The body exceeds {max_bytes} bytes.")
        yield chunk


async def _gunzip(chunks: AsyncIterator[bytes], *, max_bytes: int, max_ratio: int) -> AsyncIterator[bytes]:
    """gzip inflated in steps of INFLATE_STEP bytes with the event loop's turn after each;
    refused (UploadTooLarge) past `max_bytes` inflated, or once the text is over
    `max_ratio` times the compressed bytes read (0: no ratio limit)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    read = inflated = 0

    def check(data: bytes) -> bytes:
        nonlocal inflated
        inflated += len(data)
        if inflated > max_bytes:
            raise UploadTooLarge(f"The body inflates to more than {max_bytes} bytes.")
        if max_ratio and inflated > RATIO_GRACE and inflated > max_ratio * read:
            raise UploadTooLarge(
                f"The body inflates to more than {max_ratio} times its {read} compressed bytes (a decompression bomb?)."
            )
        return data

    async for chunk in chunks:
        read += len(chunk)
        data = check(inflater.decompress(chunk, INFLATE_STEP))
        while data:
            yield data
            await asyncio.sleep(0)
            data = (
                check(inflater.decompress(inflater.unconsumed_tail, INFLATE_STEP)) if inflater.unconsumed_tail else b""
            )
    tail = check(inflater.flush())
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
