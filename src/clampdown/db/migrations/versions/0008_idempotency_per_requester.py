"""Idempotency keys belong to their requester: unique per (requested_by, idempotency_key) instead
of across everyone, with the body a key was first used with beside it (the same key with another
body is refused). Keys of bulk actions, "<bulk key>:<target>", become "<bulk key>:<target digest>"
so a long target still fits the column. And actions.seal_key: the public half of a requester's
one-time key, to which a secret the action makes (a new random password) is sealed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_actions = sa.table(
    "actions",
    sa.column("id", sa.BigInteger),
    sa.column("target", sa.String),
    sa.column("batch_id", sa.String),
    sa.column("idempotency_key", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_constraint("uq_actions_idempotency_key", type_="unique")
        batch.add_column(sa.Column("idempotency_request", sa.JSON, nullable=True))
        batch.add_column(sa.Column("seal_key", sa.String(64), nullable=True))
        batch.create_unique_constraint(
            "uq_actions_requested_by_idempotency_key", ["requested_by", "idempotency_key"]
        )
    conn = op.get_bind()
    keyed = conn.execute(
        sa.select(_actions.c.id, _actions.c.target, _actions.c.idempotency_key).where(
            _actions.c.batch_id.is_not(None), _actions.c.idempotency_key.is_not(None)
        )
    ).all()
    for action_id, target, key in keyed:
        suffix = f":{target}"
        if key.endswith(suffix):
            digest = hashlib.sha256(target.encode()).hexdigest()[:40]
            conn.execute(
                sa.update(_actions)
                .where(_actions.c.id == action_id)
                .values(idempotency_key=f"{key.removesuffix(suffix)}:{digest}")
            )


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_constraint("uq_actions_requested_by_idempotency_key", type_="unique")
        batch.drop_column("idempotency_request")
        batch.drop_column("seal_key")
        batch.create_unique_constraint("uq_actions_idempotency_key", ["idempotency_key"])
