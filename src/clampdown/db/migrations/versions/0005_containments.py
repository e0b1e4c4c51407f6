"""Containments as records: one row per containment of a person, its actions pointing to it, and the
rules an approval covers. Every existing action is kept; each earlier playbook run becomes a
containment (released if a release undid any of its steps), so a person contained before the
upgrade can still be released after it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from clampdown.db.tables import ID, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_actions = sa.table(
    "actions",
    sa.column("id", sa.BigInteger),
    sa.column("type", sa.String),
    sa.column("target", sa.String),
    sa.column("account", sa.JSON),
    sa.column("account_id", sa.String),
    sa.column("requested_by", sa.String),
    sa.column("reason", sa.Text),
    sa.column("batch_id", sa.String),
    sa.column("undoes_action_id", sa.BigInteger),
    sa.column("status", sa.String),
    sa.column("requested_at", UTCDateTime),
    sa.column("finished_at", UTCDateTime),
    sa.column("available_at", UTCDateTime),
    sa.column("playbook", sa.String),
    sa.column("containment_id", sa.BigInteger),
    sa.column("containment_role", sa.String),
)
_containments = sa.table(
    "containments",
    sa.column("id", sa.BigInteger),
    sa.column("person", sa.String),
    sa.column("playbook", sa.String),
    sa.column("requested_by", sa.String),
    sa.column("reason", sa.Text),
    sa.column("state", sa.String),
    sa.column("created_at", UTCDateTime),
    sa.column("accounts", sa.JSON),
    sa.column("until", UTCDateTime),
    sa.column("batch_id", sa.String),
    sa.column("ended_at", UTCDateTime),
    sa.column("ended_by", sa.String),
    sa.column("end_reason", sa.Text),
    sa.column("notes", sa.JSON),
)
_links = sa.table(
    "containment_accounts", sa.column("containment_id", sa.BigInteger), sa.column("account_id", sa.String)
)


def upgrade() -> None:
    op.create_table(
        "containments",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("person", sa.String(512), nullable=False),
        sa.Column("playbook", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("accounts", sa.JSON, nullable=False),
        sa.Column("until", UTCDateTime, nullable=True),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("supersedes_id", ID, nullable=True),
        sa.Column("superseded_by_id", ID, nullable=True),
        sa.Column("ended_at", UTCDateTime, nullable=True),
        sa.Column("ended_by", sa.String(256), nullable=True),
        sa.Column("end_reason", sa.Text, nullable=True),
        sa.Column("notes", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_containments"),
        sa.ForeignKeyConstraint(
            ["supersedes_id"], ["containments.id"], name="fk_containments_supersedes_id_containments"
        ),
        sa.ForeignKeyConstraint(
            ["superseded_by_id"], ["containments.id"], name="fk_containments_superseded_by_id_containments"
        ),
    )
    op.create_index("ix_containments_state", "containments", ["state"])
    op.create_index("ix_containments_created_at", "containments", ["created_at"])
    op.create_table(
        "containment_accounts",
        sa.Column("containment_id", ID, nullable=False),
        sa.Column("account_id", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("containment_id", "account_id", name="pk_containment_accounts"),
        sa.ForeignKeyConstraint(
            ["containment_id"],
            ["containments.id"],
            name="fk_containment_accounts_containment_id_containments",
        ),
    )
    op.create_index("ix_containment_accounts_account_id", "containment_accounts", ["account_id"])
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("approval_rules", sa.JSON, nullable=True))
        batch.add_column(sa.Column("containment_id", ID, nullable=True))
        batch.add_column(sa.Column("containment_role", sa.String(16), nullable=True))
        batch.create_foreign_key(
            "fk_actions_containment_id_containments", "containments", ["containment_id"], ["id"]
        )
    op.create_index("ix_actions_containment_id", "actions", ["containment_id"])
    _containments_from_playbook_runs(op.get_bind())


def _containments_from_playbook_runs(conn: sa.Connection) -> None:
    """Each earlier playbook batch becomes a containment; its actions point to it."""
    rows = (
        conn.execute(sa.select(_actions).where(_actions.c.playbook.is_not(None)).order_by(_actions.c.id))
        .mappings()
        .all()
    )
    by_batch: dict[str, list[Any]] = {}
    for row in rows:
        by_batch.setdefault(row["batch_id"] or f"action-{row['id']}", []).append(row)
    containment_of: dict[int, int] = {}  # step action id -> containment id
    for batch, members in by_batch.items():
        if members[0]["playbook"] == "release":
            continue
        steps = [m for m in members if m["undoes_action_id"] is None]
        if not steps:
            continue
        accounts = {m["account_id"]: m["account"] for m in steps if m["account_id"] and m["account"]}
        timers = [m for m in members if m["undoes_action_id"] is not None]
        first = steps[0]
        person = (first["account"] or {}).get("name") or first["target"]
        result = conn.execute(
            sa.insert(_containments).values(
                person=person,
                playbook=first["playbook"],
                requested_by=first["requested_by"],
                reason=first["reason"],
                state="active",
                created_at=first["requested_at"],
                accounts=list(accounts.values()),
                until=max((t["available_at"] for t in timers), default=None),
                batch_id=batch,
                notes=["carried over from a playbook run before containment records"],
            )
            .returning(_containments.c.id)
        )
        containment_id = int(result.scalar_one())
        for account_id in accounts:
            conn.execute(sa.insert(_links).values(containment_id=containment_id, account_id=account_id))
        for m in members:
            role = "timer" if m["undoes_action_id"] is not None else "step"
            conn.execute(
                sa.update(_actions)
                .where(_actions.c.id == m["id"])
                .values(containment_id=containment_id, containment_role=role)
            )
            containment_of[int(m["id"])] = containment_id
        if timers and all(t["status"] in ("completed", "failed", "cancelled") for t in timers):
            ended = max((t["finished_at"] for t in timers if t["finished_at"]), default=None)
            conn.execute(
                sa.update(_containments)
                .where(_containments.c.id == containment_id)
                .values(state="expired", ended_at=ended, ended_by="timer")
            )
    for members in by_batch.values():
        if members[0]["playbook"] != "release":
            continue
        released = {c for m in members if (c := containment_of.get(int(m["undoes_action_id"] or 0)))}
        for m in members:
            target = containment_of.get(int(m["undoes_action_id"] or 0))
            conn.execute(
                sa.update(_actions)
                .where(_actions.c.id == m["id"])
                .values(containment_id=target, containment_role="release")
            )
        for containment_id in released:
            conn.execute(
                sa.update(_containments)
                .where(_containments.c.id == containment_id)
                .values(
                    state="released",
                    ended_at=members[0]["requested_at"],
                    ended_by=members[0]["requested_by"],
                    end_reason=members[0]["reason"],
                )
            )


def downgrade() -> None:
    op.drop_index("ix_actions_containment_id", "actions")
    with op.batch_alter_table("actions") as batch:
        batch.drop_constraint("fk_actions_containment_id_containments", type_="foreignkey")
        batch.drop_column("containment_role")
        batch.drop_column("containment_id")
        batch.drop_column("approval_rules")
    op.drop_table("containment_accounts")
    op.drop_table("containments")
