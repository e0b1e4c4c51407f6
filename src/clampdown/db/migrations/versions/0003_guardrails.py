"""Guardrails: playbook order and approvals on actions, the hash-chained audit log, the webhook outbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clampdown.db.tables import ID, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("after_action_id", ID, nullable=True))
        batch.add_column(sa.Column("playbook", sa.String(64), nullable=True))
        batch.add_column(sa.Column("approval_reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("approved_by", sa.String(256), nullable=True))
        batch.create_foreign_key("fk_actions_after_action_id_actions", "actions", ["after_action_id"], ["id"])
    op.create_index("ix_actions_after_action_id", "actions", ["after_action_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", ID, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(512), nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("webhook", sa.String(128), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("audit_log")
    op.drop_index("ix_actions_after_action_id", "actions")
    with op.batch_alter_table("actions") as batch:
        batch.drop_constraint("fk_actions_after_action_id_actions", type_="foreignkey")
        batch.drop_column("approved_by")
        batch.drop_column("approval_reason")
        batch.drop_column("playbook")
        batch.drop_column("after_action_id")
