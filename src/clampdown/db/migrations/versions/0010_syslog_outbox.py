"""The syslog outbox: events bound for the SIEM are committed with their cause and sent by a
background sender, so a receiver that is down or stuck neither loses events nor slows anything.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clampdown.db.tables import ID, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "syslog_outbox",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("claimed_until", UTCDateTime, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("syslog_outbox")
