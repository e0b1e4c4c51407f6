"""Where each action came from and the incident it is part of (issue 19), and the overview.

- actions.source: manual, user_page, side_panel, hunting, playbook, rule, timed_release or watch
  (model.ActionSource); every existing action is `manual` (it was not recorded).
- actions.incident, containments.incident: an optional ticket id; a containment's actions carry
  its incident.
- ix_actions_incident_id (incident, id), partial (incident IS NOT NULL): an incident's actions
  newest first; most actions have none and are not in it.
- ix_actions_source_id (source, id): a rare source (rule, watch) newest first, in id order.
- ix_actions_requested_at_status (requested_at, status) replaces ix_actions_requested_at: a time
  range as before, and the overview's count of a day's or a week's actions by status reads the
  index alone.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_WITH_INCIDENT = sa.text("incident IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        manual = sa.text("'manual'")  # every action before: where it came from was not recorded
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default=manual))
        batch.add_column(sa.Column("incident", sa.String(64), nullable=True))
    with op.batch_alter_table("containments") as batch:
        batch.add_column(sa.Column("incident", sa.String(64), nullable=True))
    op.create_index(
        "ix_actions_incident_id",
        "actions",
        ["incident", "id"],
        postgresql_where=_WITH_INCIDENT,
        sqlite_where=_WITH_INCIDENT,
    )
    op.create_index("ix_actions_source_id", "actions", ["source", "id"])
    op.drop_index("ix_actions_requested_at", table_name="actions")
    op.create_index("ix_actions_requested_at_status", "actions", ["requested_at", "status"])


def downgrade() -> None:
    op.drop_index("ix_actions_requested_at_status", table_name="actions")
    op.create_index("ix_actions_requested_at", "actions", ["requested_at"])
    op.drop_index("ix_actions_source_id", table_name="actions")
    op.drop_index("ix_actions_incident_id", table_name="actions")
    with op.batch_alter_table("containments") as batch:
        batch.drop_column("incident")
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("incident")
        batch.drop_column("source")
