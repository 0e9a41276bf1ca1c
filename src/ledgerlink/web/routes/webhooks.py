"""Webhook endpoints: Shopify and ShipStation (per connection, by an unguessable token) and QuickBooks Online.

No session, no CSRF: the signature on the raw body is the only credential (ShipStation signs nothing, so its
address token is, and the delivery is only a hint). An unverified POST gets 401 and changes nothing; a verified
one is recorded and answered at once (a sync is queued, never run here).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ledgerlink.sync import shipstation_webhooks, webhooks
from ledgerlink.web.deps import application

router = APIRouter(include_in_schema=False)


async def _body(request: Request) -> bytes | None:
    """The raw body, or None past the size limit (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > webhooks.MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > webhooks.MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(outcome: webhooks.Outcome) -> Response:
    return JSONResponse(outcome.body, status_code=outcome.status)


@router.post("/webhooks/shopify/{connection_token}")
async def shopify_webhook(connection_token: str, request: Request) -> Response:
    body = await _body(request)
    if body is None:
        return JSONResponse({"error": "body too large"}, status_code=413)
    headers = request.headers
    delivery = webhooks.ShopifyDelivery(
        token=connection_token,
        body=body,
        hmac=headers.get("x-shopify-hmac-sha256"),
        topic=headers.get("x-shopify-topic", ""),
        webhook_id=headers.get("x-shopify-webhook-id", ""),
        shop_domain=headers.get("x-shopify-shop-domain", ""),
    )
    outcome = await run_in_threadpool(webhooks.handle_shopify, application(request), delivery)
    return _answer(outcome)


@router.post("/webhooks/shipstation/{connection_token}")
async def shipstation_webhook(connection_token: str, request: Request) -> Response:
    """SHIP_NOTIFY: `{"resource_url", "resource_type"}`; queues the write-back of the shipments it names."""
    body = await _body(request)
    if body is None:
        return JSONResponse({"error": "body too large"}, status_code=413)
    outcome = await run_in_threadpool(
        shipstation_webhooks.handle_ship_notify, application(request), connection_token, body
    )
    return _answer(outcome)


@router.post("/webhooks/qbo")
async def qbo_webhook(request: Request) -> Response:
    body = await _body(request)
    if body is None:
        return JSONResponse({"error": "body too large"}, status_code=413)
    signature = request.headers.get("intuit-signature")
    outcome = await run_in_threadpool(webhooks.handle_qbo, application(request), body, signature)
    return _answer(outcome)
