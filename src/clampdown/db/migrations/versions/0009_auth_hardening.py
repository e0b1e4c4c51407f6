"""Sign-in hardening: throttling of failed password sign-ins, a server key for hashing unknown
usernames, single sign-on refresh tokens on sessions, and service tokens.

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clampdown.db.tables import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signin_throttle",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_at", UTCDateTime, nullable=False),
        sa.Column("blocked_until", UTCDateTime, nullable=True),
    )
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("refresh_token", sa.Text, nullable=True))
        batch.add_column(sa.Column("sso_checked_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("service", sa.Boolean, nullable=False, server_default=sa.text("false")))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("service")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("sso_checked_at")
        batch.drop_column("refresh_token")
    op.drop_table("server_keys")
    op.drop_table("signin_throttle")
