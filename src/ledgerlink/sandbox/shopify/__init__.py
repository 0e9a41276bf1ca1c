"""A local emulator of the Shopify Admin REST API (orders and transactions) and its order generator."""

from __future__ import annotations

from ledgerlink.sandbox.shopify.app import (
    Fault,
    LoggedRequest,
    SandboxStats,
    ShopifySandbox,
    create_app,
    run_standalone,
)
from ledgerlink.sandbox.shopify.generator import generate_orders, generate_transactions

__all__ = [
    "Fault",
    "LoggedRequest",
    "SandboxStats",
    "ShopifySandbox",
    "create_app",
    "generate_orders",
    "generate_transactions",
    "run_standalone",
]
