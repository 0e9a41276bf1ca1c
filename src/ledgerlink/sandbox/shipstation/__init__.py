"""A local emulator of the ShipStation v1 API (orders, shipments, stores, webhooks) and its order generator."""

from __future__ import annotations

from ledgerlink.sandbox.shipstation.app import (
    ApiError,
    Delivery,
    Fault,
    LoggedRequest,
    SandboxStats,
    ShipStationSandbox,
    create_app,
    format_wall,
    order_total,
    parse_wall,
    run_standalone,
    wall_of,
)
from ledgerlink.sandbox.shipstation.generator import PACIFIC, STORES, generate_orders, pacific_wall

__all__ = [
    "PACIFIC",
    "STORES",
    "ApiError",
    "Delivery",
    "Fault",
    "LoggedRequest",
    "SandboxStats",
    "ShipStationSandbox",
    "create_app",
    "format_wall",
    "generate_orders",
    "order_total",
    "pacific_wall",
    "parse_wall",
    "run_standalone",
    "wall_of",
]
