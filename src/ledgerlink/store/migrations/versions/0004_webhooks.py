"""Webhooks: verified Shopify deliveries (deduplicated on X-Shopify-Webhook-Id) and the entity changes QuickBooks
Online reported

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "books_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("company_id", ID, nullable=False),
        sa.Column("books_id", ID, nullable=False),
        sa.Column("realm_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("operation", sa.String(length=20), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["books_id"], ["connections.id"], name=op.f("fk_books_events_books_id_connections"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_books_events_company_id_companies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_books_events")),
        sa.UniqueConstraint("books_id", "event_id", name=op.f("uq_books_events_books_id")),
    )
    with op.batch_alter_table("books_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_books_events_company_id"), ["company_id"], unique=False)
        batch_op.create_index("ix_books_events_entity", ["books_id", "entity", "entity_id"], unique=False)
        batch_op.create_index("ix_books_events_pending", ["books_id", "processed_at", "id"], unique=False)

    op.create_table(
        "webhook_receipts",
        sa.Column("id", ID, nullable=False),
        sa.Column("company_id", ID, nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("webhook_id", sa.String(length=100), nullable=False),
        sa.Column("topic", sa.String(length=60), nullable=False),
        sa.Column("channel_order_id", sa.String(length=64), nullable=False),
        sa.Column("order_number", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("job_id", ID, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_webhook_receipts_company_id_companies"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_webhook_receipts_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["sync_jobs.id"], name=op.f("fk_webhook_receipts_job_id_sync_jobs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_receipts")),
        sa.UniqueConstraint("connection_id", "webhook_id", name=op.f("uq_webhook_receipts_connection_id")),
    )
    with op.batch_alter_table("webhook_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_receipts_company_id"), ["company_id"], unique=False)
        batch_op.create_index("ix_webhook_receipts_received", ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_receipts_received")
        batch_op.drop_index(batch_op.f("ix_webhook_receipts_company_id"))

    op.drop_table("webhook_receipts")
    with op.batch_alter_table("books_events", schema=None) as batch_op:
        batch_op.drop_index("ix_books_events_pending")
        batch_op.drop_index("ix_books_events_entity")
        batch_op.drop_index(batch_op.f("ix_books_events_company_id"))

    op.drop_table("books_events")
