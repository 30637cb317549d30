"""Bootstrapping a deployment: the program office's ADMIN partner and its clients."""

from __future__ import annotations

import sqlalchemy as sa

from auth.clients import create_client
from auth.scopes import scopes_for_kind
from gateway.db import Database
from gateway.models import ClientAuthMethod, Partner, PartnerKind
from gateway.settings import Settings

ADMIN_CODE = "program-office"
ADMIN_NAME = "Seoul Walking Mileage Program Office"


async def ensure_admin_partner(session) -> Partner:
    admin = (
        await session.execute(sa.select(Partner).where(Partner.kind == PartnerKind.ADMIN).order_by(Partner.id).limit(1))
    ).scalar_one_or_none()
    if admin is None:
        admin = Partner(code=ADMIN_CODE, name=ADMIN_NAME, kind=PartnerKind.ADMIN)
        session.add(admin)
        await session.flush()
    return admin


async def create_admin_client(settings: Settings) -> tuple[str, str]:
    """Create the ADMIN partner if there is none, and a new client for it; returns (id, secret)."""
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            admin = await ensure_admin_partner(session)
            client, secret = await create_client(
                session=session,
                partner=admin,
                scopes=scopes_for_kind("ADMIN"),
                auth_method=ClientAuthMethod.CLIENT_SECRET_BASIC,
            )
            return client.client_id, secret
    finally:
        await db.dispose()
