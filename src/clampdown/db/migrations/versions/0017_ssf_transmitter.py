"""Shared Signals out (issue 21): Clampdown's streams as a transmitter (SSF 1.0 section 8), the
subjects added to or removed from each, the outbox of signed SETs, and which containments were
announced.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clampdown.db.tables import ID, UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ssf_streams",
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("description", sa.String(1024), nullable=True),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("events_requested", sa.JSON(), nullable=False),
        sa.Column("delivery_method", sa.String(64), nullable=False),
        sa.Column("endpoint_url", sa.String(2048), nullable=True),
        sa.Column("authorization_header", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.String(1024), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("verified_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("stream_id", name="pk_ssf_streams"),
    )
    op.create_index("ix_ssf_streams_owner", "ssf_streams", ["owner"])
    op.create_table(
        "ssf_stream_subjects",
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("subject_key", sa.String(512), nullable=False),
        sa.Column("subject", sa.JSON(), nullable=False),
        sa.Column("included", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["ssf_streams.stream_id"],
            ondelete="CASCADE",
            name="fk_ssf_stream_subjects_stream_id_ssf_streams",
        ),
        sa.PrimaryKeyConstraint("stream_id", "subject_key", name="pk_ssf_stream_subjects"),
    )
    op.create_table(
        "ssf_outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("stream_id", sa.String(64), nullable=False),
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(1024), nullable=True),
        sa.Column("containment_id", ID, nullable=True),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["ssf_streams.stream_id"],
            ondelete="CASCADE",
            name="fk_ssf_outbox_stream_id_ssf_streams",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ssf_outbox"),
        sa.UniqueConstraint("jti", name="uq_ssf_outbox_jti"),
    )
    op.create_index("ix_ssf_outbox_due", "ssf_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_ssf_outbox_stream", "ssf_outbox", ["stream_id", "status", "id"])
    op.create_table(
        "ssf_announcements",
        sa.Column("containment_id", ID, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("announced_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("containment_id", "phase", name="pk_ssf_announcements"),
    )


def downgrade() -> None:
    op.drop_table("ssf_announcements")
    op.drop_index("ix_ssf_outbox_stream", table_name="ssf_outbox")
    op.drop_index("ix_ssf_outbox_due", table_name="ssf_outbox")
    op.drop_table("ssf_outbox")
    op.drop_table("ssf_stream_subjects")
    op.drop_index("ix_ssf_streams_owner", table_name="ssf_streams")
    op.drop_table("ssf_streams")
