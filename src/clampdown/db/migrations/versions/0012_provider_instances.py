"""Provider instances: every action records the configured directory it runs against (several AD
forests, Entra tenants or Okta orgs per Clampdown). Existing actions ran against the one directory
of their kind, named after it: they are attributed to it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("instance", sa.String(64), nullable=True))
    op.execute("UPDATE actions SET instance = provider WHERE instance IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("instance")
