"""The routers of the web app, in the order they are mounted."""

from __future__ import annotations

from fastapi import APIRouter

from ledgerlink.web.routes import (
    account,
    activity,
    api,
    auth,
    connections,
    dashboard,
    preview,
    products,
    qbwc,
    settings,
    webhooks,
    wizard,
)

ROUTERS: list[APIRouter] = [
    auth.router,
    dashboard.router,
    connections.router,
    wizard.router,
    settings.router,
    activity.router,
    products.router,
    preview.router,
    account.router,
    api.router,
    qbwc.router,
    webhooks.router,
]
