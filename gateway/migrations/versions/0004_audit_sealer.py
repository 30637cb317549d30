"""audit events written unsealed with their mutation, chained later by the sealer

Every mutation used to take the chain head's lock in a second transaction to append its
audit event, so mutations serialized across processes (and a crash between the commit
and that write lost the event). Events are now inserted in the mutation's own
transaction without `prev_hash`/`hash`; the sealer (gateway/audit.py `seal`) gives them a
chain position `seq` and their hashes. Existing events are already chained in id order:
they get `seq` = their rank by id, so their hashes stay valid.

Revision ID: 0004_audit_sealer
Revises: 0003_persisted_queries_per_partner
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_audit_sealer"
down_revision = "0003_persisted_queries_per_partner"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.add_column(sa.Column("seq", BigId, nullable=True))
        batch_op.alter_column("prev_hash", existing_type=sa.String(64), nullable=True)
        batch_op.alter_column("hash", existing_type=sa.String(64), nullable=True)
    # Window functions and UPDATE ... FROM: PostgreSQL, and SQLite from 3.33.
    op.execute(
        "UPDATE audit_events SET seq = ranked.n FROM "
        "(SELECT id, row_number() OVER (ORDER BY id) AS n FROM audit_events) AS ranked "
        "WHERE audit_events.id = ranked.id"
    )
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_seq"), ["seq"])


def downgrade() -> None:
    # Unsealed events cannot be chained here (that needs the sealer's code), and audit
    # rows are never dropped: seal them first (`mileage-gateway audit seal`).
    unsealed = op.get_bind().execute(sa.text("SELECT count(*) FROM audit_events WHERE seq IS NULL")).scalar()
    if unsealed:
        raise RuntimeError(f"{unsealed} audit events are not sealed yet: run `mileage-gateway audit seal` first")
    with op.batch_alter_table("audit_events") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_seq"), type_="unique")
        batch_op.drop_column("seq")
        batch_op.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(64), nullable=False)
