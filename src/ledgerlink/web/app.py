"""`create_app(application)`: the FastAPI app. Built by the composition root; nothing is created at import."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from ledgerlink.bootstrap import App
from ledgerlink.metrics import metrics_router
from ledgerlink.web.deps import ApiUnauthorized, CsrfRefused, NotSignedIn
from ledgerlink.web.templating import render

STATIC = Path(__file__).parent / "static"


def create_app(application: App) -> FastAPI:
    """The web app over one `App` (database, secret box, adapters)."""
    from ledgerlink.web.routes import ROUTERS
    from ledgerlink.web.routes import rules as rules_pages

    web = FastAPI(
        title="ledgerlink",
        version="0.1.0",
        description="Selling channels ⇄ QuickBooks. The JSON API lives under /api/v1 (bearer tokens from My Account).",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    web.state.ledger = application
    secret = application.settings.secret_key.get_secret_value()
    session_key = hashlib.sha256(b"ledgerlink-session-v1:" + secret.encode()).hexdigest()
    web.add_middleware(
        SessionMiddleware,
        secret_key=session_key,
        session_cookie="ledgerlink_session",
        max_age=14 * 24 * 3600,
        same_site="lax",
        https_only=application.settings.session_https_only,
    )
    web.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    web.include_router(rules_pages.router)  # before settings' /settings/{id}/{page}, which would take …/rules
    for router in ROUTERS:
        web.include_router(router)
    web.include_router(metrics_router(application.db))  # Prometheus: /metrics

    @web.exception_handler(NotSignedIn)
    async def _signin(request: Request, _exc: NotSignedIn) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)

    @web.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _exc: CsrfRefused) -> Response:
        return render(
            request,
            "error.html",
            status_code=403,
            title="This form has expired",
            message="The page was open too long or came from somewhere else. Go back, reload it and try again.",
        )

    @web.exception_handler(ApiUnauthorized)
    async def _api(_request: Request, _exc: ApiUnauthorized) -> Response:
        return JSONResponse(
            {"detail": "a valid API token is required: Authorization: Bearer <token> (create one under My Account)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @web.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return web
