"""Shared Signals (issue 21): the jti of every Security Event Token received, per issuer, so a
replayed SET is refused (RFC 8417 section 4.1); rows are pruned once their `iat` is out of the
accepted window (ix_ssf_received_jtis_issued_at).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clampdown.db.tables import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ssf_received_jtis",
        sa.Column("issuer", sa.String(512), nullable=False),
        sa.Column("jti", sa.String(256), nullable=False),
        sa.Column("receiver", sa.String(64), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti", name="pk_ssf_received_jtis"),
    )
    op.create_index("ix_ssf_received_jtis_issued_at", "ssf_received_jtis", ["issued_at"])


def downgrade() -> None:
    op.drop_index("ix_ssf_received_jtis_issued_at", table_name="ssf_received_jtis")
    op.drop_table("ssf_received_jtis")
