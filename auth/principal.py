"""Who is calling: the verified content of an access token."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    client_id: str
    partner_id: int
    partner_code: str
    #: A PartnerKind value: OPERATOR, MERCHANT, SPONSOR, BENEFICIARY or ADMIN.
    partner_kind: str
    scopes: frozenset[str]
    jti: str
    expires_at: dt.datetime
    #: The client's `persisted_queries_only`, read with the token check (None: not known, look it up).
    persisted_queries_only: bool | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return self.partner_kind == "ADMIN" and "admin" in self.scopes
