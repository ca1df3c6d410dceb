"""reader profiles and answer feedback

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profiles",
        sa.Column("reader_id", sa.String(128), primary_key=True),
        sa.Column("software_background", sa.String(500), nullable=False, server_default=""),
        sa.Column("hardware_background", sa.String(500), nullable=False, server_default=""),
        sa.Column("experience_level", sa.String(20), nullable=False, server_default=""),
        sa.Column("goals", sa.String(1000), nullable=False, server_default=""),
        sa.Column("preferred_language", sa.String(16), nullable=False, server_default="en"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reader_id", sa.String(128), nullable=False),
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("comment", sa.String(2000), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_feedback_reader_id", "feedback", ["reader_id"])
    op.create_index("ix_feedback_thread_id", "feedback", ["thread_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("profiles")
