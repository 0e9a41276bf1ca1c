"""The reverse direction (QuickBooks sales → ShipStation orders): what was sent as of which SyncToken, the
shipments written back, and how far both sides have been read

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reverse_cursors",
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("changes_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("shipments_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_reverse_cursors_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_reverse_cursors")),
    )
    op.create_table(
        "reverse_orders",
        sa.Column("id", ID, nullable=False),
        sa.Column("company_id", ID, nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("books_id", ID, nullable=False),
        sa.Column("entity", sa.String(length=20), nullable=False),
        sa.Column("qbo_id", sa.String(length=64), nullable=False),
        sa.Column("doc_number", sa.String(length=64), nullable=False),
        sa.Column("order_key", sa.String(length=120), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("seen_sync_token", sa.String(length=20), nullable=False),
        sa.Column("sending_sync_token", sa.String(length=20), nullable=False),
        sa.Column("sent_sync_token", sa.String(length=20), nullable=False),
        sa.Column("own_sync_token", sa.String(length=20), nullable=False),
        sa.Column("order_status", sa.String(length=30), nullable=False),
        sa.Column("body", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("shipstation_order_id", sa.BigInteger(), nullable=True),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("tracking_number", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["books_id"], ["connections.id"], name=op.f("fk_reverse_orders_books_id_connections"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_reverse_orders_company_id_companies"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_reverse_orders_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reverse_orders")),
        sa.UniqueConstraint("connection_id", "order_key", name=op.f("uq_reverse_orders_connection_id")),
    )
    with op.batch_alter_table("reverse_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reverse_orders_company_id"), ["company_id"], unique=False)
        batch_op.create_index("ix_reverse_orders_doc", ["connection_id", "entity", "qbo_id"], unique=False)
        batch_op.create_index("ix_reverse_orders_state", ["connection_id", "state"], unique=False)

    op.create_table(
        "reverse_shipments",
        sa.Column("id", ID, nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("reverse_order_id", ID, nullable=False),
        sa.Column("shipment_id", sa.BigInteger(), nullable=False),
        sa.Column("tracking_number", sa.String(length=100), nullable=False),
        sa.Column("carrier_code", sa.String(length=50), nullable=False),
        sa.Column("service_code", sa.String(length=80), nullable=False),
        sa.Column("ship_date", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("qbo_sync_token", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_reverse_shipments_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reverse_order_id"],
            ["reverse_orders.id"],
            name=op.f("fk_reverse_shipments_reverse_order_id_reverse_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reverse_shipments")),
        sa.UniqueConstraint("connection_id", "shipment_id", name=op.f("uq_reverse_shipments_connection_id")),
    )
    with op.batch_alter_table("reverse_shipments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reverse_shipments_reverse_order_id"), ["reverse_order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reverse_shipments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reverse_shipments_reverse_order_id"))

    op.drop_table("reverse_shipments")
    with op.batch_alter_table("reverse_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_reverse_orders_state")
        batch_op.drop_index("ix_reverse_orders_doc")
        batch_op.drop_index(batch_op.f("ix_reverse_orders_company_id"))

    op.drop_table("reverse_orders")
    op.drop_table("reverse_cursors")
