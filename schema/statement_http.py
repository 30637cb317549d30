"""`GET /statements/{id}.{json,csv,pdf}`: an issued donation statement behind a signed URL.

The URL's HMAC signature and expiry are checked before anything else: a changed or expired
URL gets 403 whether or not the statement exists, so ids cannot be probed. The JSON is the
stored canonical bytes (what `digest` and `signature` cover); CSV and PDF are rendered from
those same bytes. Errors are `{"error": "<code>", "message"}`; an unexpected one is 500
`internal` with an `errorId` (schema/rest_errors.py).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import documents
from gateway import statements as statement_service
from gateway.models import Partner
from gateway.models.campaigns import Campaign
from schema.rest_errors import masked


def statement_routes(state: Any) -> list[Route]:
    settings = state.settings

    @masked(settings)
    async def serve(request: Request) -> Response:
        signed, expires, sig = documents.strip_signature(request.url.path, dict(request.query_params))
        if not documents.verify_url(path_with_query=signed, expires=expires, sig=sig, secret_key=settings.secret_key):
            return JSONResponse(
                {"error": "forbidden", "message": "This link was changed or has expired."}, status_code=403
            )
        fmt = request.path_params["fmt"]
        if fmt not in statement_service.FORMATS:
            return JSONResponse({"error": "not_found"}, status_code=404)
        async with state.db.session() as session:
            statement = await statement_service.get_issued(session, request.path_params["statement_id"])
            if statement is None:
                return JSONResponse({"error": "not_found"}, status_code=404)
            names = await _names(session, statement) if fmt == "pdf" else ({}, {})
        stem = f"donation-statement-{statement.sponsor}-{statement.period_start}-{statement.period_end}"
        headers = {
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'inline; filename="{stem}.{fmt}"',
            "X-Document-Digest": statement.digest,
            "X-Document-Signature": statement.signature,
        }
        if fmt == "json":
            body = statement.document
        elif fmt == "csv":
            body = statement_service.render_csv(statement)
        else:
            body = statement_service.render_pdf(
                statement, partner_names=names[0], campaign_names=names[1], issuer=settings.issuer
            )
        return Response(body, media_type=statement_service.FORMATS[fmt], headers=headers)

    return [Route("/statements/{statement_id:int}.{fmt}", serve, methods=["GET"])]


async def _names(session, statement: statement_service.Statement) -> tuple[dict[str, str], dict[str, str]]:
    """Display names, by code, of the statement's partners (sponsor, beneficiaries) and campaigns."""
    partner_codes = {statement.sponsor, *(line.beneficiary for line in statement.lines)}
    campaign_codes = {line.campaign for line in statement.lines}
    partners = dict(
        (await session.execute(sa.select(Partner.code, Partner.name).where(Partner.code.in_(partner_codes)))).all()
    )
    campaigns = dict(
        (await session.execute(sa.select(Campaign.code, Campaign.name).where(Campaign.code.in_(campaign_codes)))).all()
    )
    return partners, campaigns
