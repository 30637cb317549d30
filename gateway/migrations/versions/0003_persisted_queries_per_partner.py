"""persisted queries per partner, with their last use

Issue 17, item 7: the persisted-query store was shared by every partner and unbounded.
Each query now belongs to a partner (the partner of the client that stored it; queries
whose client is gone are dropped: a client sends them again on PERSISTED_QUERY_NOT_FOUND),
and `last_used_at` orders the least recently used for eviction.

Revision ID: 0003_persisted_queries_per_partner
Revises: 0002_client_token_epoch
"""

import sqlalchemy as sa
from alembic import op

import gateway.db

revision = "0003_persisted_queries_per_partner"
down_revision = "0002_client_token_epoch"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Alembic's version column is VARCHAR(32) and this revision's id is 34 characters;
        # the id is written after this function, in the same transaction.
        op.alter_column("alembic_version", "version_num", existing_type=sa.String(32), type_=sa.String(64))
    with op.batch_alter_table("persisted_queries") as batch_op:
        batch_op.add_column(sa.Column("partner_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("last_used_at", gateway.db.UTCDateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE persisted_queries SET last_used_at = created_at, partner_id = "
        "(SELECT oauth_clients.partner_id FROM oauth_clients WHERE oauth_clients.client_id = persisted_queries.created_by)"
    )
    op.execute("DELETE FROM persisted_queries WHERE partner_id IS NULL")
    with op.batch_alter_table("persisted_queries", recreate="auto") as batch_op:
        batch_op.alter_column("partner_id", existing_type=BigId, nullable=False)
        batch_op.alter_column("last_used_at", existing_type=gateway.db.UTCDateTime(timezone=True), nullable=False)
        batch_op.drop_constraint("pk_persisted_queries", type_="primary")
        batch_op.create_primary_key("pk_persisted_queries", ["partner_id", "sha256"])
        batch_op.create_foreign_key(
            batch_op.f("fk_persisted_queries_partner_id_partners"), "partners", ["partner_id"], ["id"]
        )
        batch_op.create_index("ix_persisted_queries_partner_last_used", ["partner_id", "last_used_at"], unique=False)


def downgrade() -> None:
    # Back to one shared store: of a hash several partners stored, the first copy stays.
    with op.batch_alter_table("persisted_queries") as batch_op:
        batch_op.drop_index("ix_persisted_queries_partner_last_used")
        batch_op.drop_constraint(batch_op.f("fk_persisted_queries_partner_id_partners"), type_="foreignkey")
    op.execute(
        "DELETE FROM persisted_queries WHERE EXISTS (SELECT 1 FROM persisted_queries AS other "
        "WHERE other.sha256 = persisted_queries.sha256 AND other.partner_id < persisted_queries.partner_id)"
    )
    with op.batch_alter_table("persisted_queries", recreate="auto") as batch_op:
        batch_op.drop_constraint("pk_persisted_queries", type_="primary")
        batch_op.create_primary_key("pk_persisted_queries", ["sha256"])
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("partner_id")
