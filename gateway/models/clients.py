"""OAuth clients, signing keys and token bookkeeping (owned by auth/, stored here)."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class ClientAuthMethod(str, enum.Enum):
    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt"


class OAuthClient(IdMixin, Base):
    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    partner_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), index=True)
    #: Argon2id hash; the secret itself is shown once and never stored.
    secret_hash: Mapped[str | None] = mapped_column(sa.String(255))
    auth_method: Mapped[ClientAuthMethod] = mapped_column(
        sa.Enum(ClientAuthMethod, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])
    )
    #: Space-separated scopes, as OAuth writes them.
    scope: Mapped[str] = mapped_column(sa.Text)
    #: PRIVATE_KEY_JWT: the client's public JWKS (JSON text).
    jwks: Mapped[str | None] = mapped_column(sa.Text)
    enabled: Mapped[bool] = mapped_column(default=True)
    persisted_queries_only: Mapped[bool] = mapped_column(default=False)
    #: Access tokens carry the epoch their client had when they were issued; only tokens of
    #: the current epoch are accepted. A secret rotation or a disable moves it on, which
    #: revokes every token the client holds at once (a counter, not a time: a token issued
    #: in the same second as a rotation is told apart exactly).
    token_epoch: Mapped[int] = mapped_column(default=0, server_default=sa.text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()


class SigningKey(Base):
    """An asymmetric key that signs access tokens or documents; private half encrypted at rest."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one current (signing) key per algorithm, even with several processes
        # creating or rotating keys at once: the loser of a race gets an IntegrityError.
        sa.Index(
            "uq_signing_keys_current_alg",
            "alg",
            unique=True,
            sqlite_where=sa.text("retired_at IS NULL"),
            postgresql_where=sa.text("retired_at IS NULL"),
        ),
    )

    kid: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    #: "ES256" signs access tokens, "EdDSA" signs statements and settlements.
    alg: Mapped[str] = mapped_column(sa.String(16))
    private_key_encrypted: Mapped[bytes] = mapped_column(sa.LargeBinary)
    public_jwk: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: When it stopped signing; it stays published until `publish_until`.
    retired_at: Mapped[dt.datetime | None]
    publish_until: Mapped[dt.datetime | None]


class RevokedToken(Base):
    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class UsedAssertion(Base):
    """`jti`s of private_key_jwt assertions already used (single use within their lifetime)."""

    __tablename__ = "used_assertions"

    jti: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    client_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
