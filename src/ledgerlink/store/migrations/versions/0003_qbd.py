"""QuickBooks Desktop: Web Connector sessions, message sets, queued customers and items, the cached lists, and
the transactions QuickBooks reported

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qbd_company_files",
        sa.Column(
            "books_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("company_file", sa.String(length=500), nullable=False),
        sa.Column("country", sa.String(length=5), nullable=False),
        sa.Column("qbxml_version", sa.String(length=10), nullable=False),
        sa.Column("lists_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_session_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["books_id"], ["connections.id"], name=op.f("fk_qbd_company_files_books_id_connections"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("books_id", name=op.f("pk_qbd_company_files")),
    )
    op.create_table(
        "qbd_list_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("books_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("list", sa.String(length=20), nullable=False),
        sa.Column("list_id", sa.String(length=40), nullable=False),
        sa.Column("full_name", sa.String(length=400), nullable=False),
        sa.Column("fold_name", sa.String(length=400), nullable=False),
        sa.Column("fold_alias", sa.String(length=400), nullable=False),
        sa.Column("fold_sku", sa.String(length=100), nullable=False),
        sa.Column("fold_email", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("special", sa.String(length=40), nullable=False),
        sa.Column("edit_sequence", sa.String(length=20), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("refreshed_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["books_id"], ["connections.id"], name=op.f("fk_qbd_list_entries_books_id_connections"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qbd_list_entries")),
        sa.UniqueConstraint("books_id", "list", "list_id", name=op.f("uq_qbd_list_entries_books_id")),
    )
    with op.batch_alter_table("qbd_list_entries", schema=None) as batch_op:
        batch_op.create_index("ix_qbd_list_entries_alias", ["books_id", "list", "fold_alias"], unique=False)
        batch_op.create_index("ix_qbd_list_entries_email", ["books_id", "list", "fold_email"], unique=False)
        batch_op.create_index("ix_qbd_list_entries_name", ["books_id", "list", "fold_name"], unique=False)
        batch_op.create_index("ix_qbd_list_entries_sku", ["books_id", "list", "fold_sku"], unique=False)

    op.create_table(
        "qbd_message_sets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("set_id", sa.String(length=24), nullable=False),
        sa.Column("books_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("requests", sa.JSON(), nullable=False),
        sa.Column("recoveries", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["books_id"], ["connections.id"], name=op.f("fk_qbd_message_sets_books_id_connections"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qbd_message_sets")),
        sa.UniqueConstraint("set_id", name=op.f("uq_qbd_message_sets_set_id")),
    )
    with op.batch_alter_table("qbd_message_sets", schema=None) as batch_op:
        batch_op.create_index("ix_qbd_message_sets_books_state", ["books_id", "state"], unique=False)

    op.create_table(
        "qbd_queued_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("books_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("need_key", sa.String(length=400), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("fold_name", sa.String(length=100), nullable=False),
        sa.Column("alias", sa.String(length=400), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("list_id", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["books_id"],
            ["connections.id"],
            name=op.f("fk_qbd_queued_records_books_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qbd_queued_records")),
        sa.UniqueConstraint("books_id", "kind", "fold_name", name=op.f("uq_qbd_queued_records_books_id")),
    )
    with op.batch_alter_table("qbd_queued_records", schema=None) as batch_op:
        batch_op.create_index("ix_qbd_queued_records_books_state", ["books_id", "state"], unique=False)

    op.create_table(
        "qbwc_sessions",
        sa.Column("ticket", sa.String(length=64), nullable=False),
        sa.Column("books_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("outstanding", sa.String(length=24), nullable=True),
        sa.Column("outstanding_mode", sa.String(length=10), nullable=False),
        sa.Column("refresh", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("company_file", sa.String(length=500), nullable=False),
        sa.Column("qbxml_version", sa.String(length=10), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["books_id"], ["connections.id"], name=op.f("fk_qbwc_sessions_books_id_connections"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket", name=op.f("pk_qbwc_sessions")),
    )
    with op.batch_alter_table("qbwc_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_qbwc_sessions_books_id"), ["books_id"], unique=False)

    op.create_table(
        "qbd_transactions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("books_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("txn_type", sa.String(length=30), nullable=False),
        sa.Column("txn_id", sa.String(length=40), nullable=False),
        sa.Column("ref_number", sa.String(length=20), nullable=False),
        sa.Column("edit_sequence", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("posting_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("set_id", sa.String(length=24), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["books_id"], ["connections.id"], name=op.f("fk_qbd_transactions_books_id_connections"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["posting_id"], ["postings.id"], name=op.f("fk_qbd_transactions_posting_id_postings"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qbd_transactions")),
        sa.UniqueConstraint("books_id", "txn_id", name=op.f("uq_qbd_transactions_books_id")),
    )
    with op.batch_alter_table("qbd_transactions", schema=None) as batch_op:
        batch_op.create_index("ix_qbd_transactions_ref", ["books_id", "txn_type", "ref_number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("qbd_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_qbd_transactions_ref")

    op.drop_table("qbd_transactions")
    with op.batch_alter_table("qbwc_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_qbwc_sessions_books_id"))

    op.drop_table("qbwc_sessions")
    with op.batch_alter_table("qbd_queued_records", schema=None) as batch_op:
        batch_op.drop_index("ix_qbd_queued_records_books_state")

    op.drop_table("qbd_queued_records")
    with op.batch_alter_table("qbd_message_sets", schema=None) as batch_op:
        batch_op.drop_index("ix_qbd_message_sets_books_state")

    op.drop_table("qbd_message_sets")
    with op.batch_alter_table("qbd_list_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_qbd_list_entries_sku")
        batch_op.drop_index("ix_qbd_list_entries_name")
        batch_op.drop_index("ix_qbd_list_entries_email")
        batch_op.drop_index("ix_qbd_list_entries_alias")

    op.drop_table("qbd_list_entries")
    op.drop_table("qbd_company_files")
