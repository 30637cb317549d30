"""a per-client token epoch

Issue 17, item 10: a secret rotation or a disable revokes the client's outstanding access
tokens at once. Tokens carry the client's `token_epoch` claim; the verifier accepts only
the current one. Existing clients start at 0, as do tokens issued before this revision
(they carry no claim), so an upgrade revokes nothing.

Revision ID: 0002_client_token_epoch
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_client_token_epoch"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch_op:
        batch_op.add_column(sa.Column("token_epoch", sa.Integer(), server_default=sa.text("0"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients") as batch_op:
        batch_op.drop_column("token_epoch")
