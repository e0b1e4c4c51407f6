"""The actions table: action center and queue.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clampdown.db.tables import ID, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("account", sa.JSON, nullable=True),
        sa.Column("account_id", sa.String(256), nullable=True),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=True),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("undoes_action_id", ID, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("available_at", UTCDateTime, nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("state_before", sa.JSON, nullable=True),
        sa.Column("restore_state", sa.JSON, nullable=True),
        sa.Column("provider_request_id", sa.String(256), nullable=True),
        sa.Column("parameters", sa.JSON, nullable=True),
        sa.Column("history", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_actions"),
        sa.UniqueConstraint("idempotency_key", name="uq_actions_idempotency_key"),
        sa.ForeignKeyConstraint(
            ["undoes_action_id"], ["actions.id"], name="fk_actions_undoes_action_id_actions"
        ),
    )
    due = sa.text("status IN ('queued', 'running')")
    op.create_index(
        "ix_actions_due", "actions", ["available_at", "id"], postgresql_where=due, sqlite_where=due
    )
    op.create_index("ix_actions_requested_at", "actions", ["requested_at"])
    op.create_index("ix_actions_batch_id", "actions", ["batch_id"])
    op.create_index("ix_actions_account_id", "actions", ["account_id"])
    op.create_index("ix_actions_status_requested_at", "actions", ["status", "requested_at"])


def downgrade() -> None:
    op.drop_table("actions")
