"""translated and personalized chapter sections

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chapter_sections",
        sa.Column("chapter_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("section_index", sa.Integer, nullable=False),
        sa.Column("section_hash", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("model", sa.String(128), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("chapter_hash", "kind", "target", "section_index"),
    )
    # An edited chapter looks up its unchanged sections by their own hash.
    op.create_index("ix_chapter_sections_reuse", "chapter_sections", ["kind", "target", "section_hash"])


def downgrade() -> None:
    op.drop_index("ix_chapter_sections_reuse", table_name="chapter_sections")
    op.drop_table("chapter_sections")
