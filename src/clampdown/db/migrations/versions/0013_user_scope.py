"""Scoped access: a user's role assignments can be limited to some directories (provider sections);
null, as for every existing user, means every directory. The action center of such a user pages
through the actions of their directories by an index on (instance, id).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("scope", sa.JSON, nullable=True))
    op.create_index("ix_actions_instance_id", "actions", ["instance", "id"])


def downgrade() -> None:
    op.drop_index("ix_actions_instance_id", table_name="actions")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("scope")
