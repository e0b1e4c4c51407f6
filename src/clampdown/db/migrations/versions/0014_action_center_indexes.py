"""The action center at scale (issue 18): every filter of the console and the API pages through
millions of actions newest first by an index that holds its matches in id order, or finds them
at once, instead of walking the primary key through every other action.

- ix_actions_status_id (status, id) replaces ix_actions_status_requested_at: a status is listed
  in id order, never by requested_at (a time range has ix_actions_requested_at).
- ix_actions_type_id (type, id): an action type, however rare (or absent), in id order.
- ix_actions_target (target): a person's actions by the target as given (the account id has
  ix_actions_account_id; the filter matches either).
- ix_actions_requested_by_id (requested_by, id), on SQLite only: without value statistics SQLite
  takes the unique key (requested_by, idempotency_key) for a requester of a third of all actions
  and sorts them all; PostgreSQL's statistics see such a requester and walk the primary key.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    op.drop_index("ix_actions_status_requested_at", table_name="actions")
    op.create_index("ix_actions_status_id", "actions", ["status", "id"])
    op.create_index("ix_actions_type_id", "actions", ["type", "id"])
    op.create_index("ix_actions_target", "actions", ["target"])
    if _sqlite():
        op.create_index("ix_actions_requested_by_id", "actions", ["requested_by", "id"])


def downgrade() -> None:
    if _sqlite():
        op.drop_index("ix_actions_requested_by_id", table_name="actions")
    op.drop_index("ix_actions_target", table_name="actions")
    op.drop_index("ix_actions_type_id", table_name="actions")
    op.drop_index("ix_actions_status_id", table_name="actions")
    op.create_index("ix_actions_status_requested_at", "actions", ["status", "requested_at"])
