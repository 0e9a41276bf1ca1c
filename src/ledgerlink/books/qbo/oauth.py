"""Intuit OAuth 2.0 over plain httpx: the authorize URL, the code exchange and the refresh (which rotates)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from ledgerlink.books.base import Tokens
from ledgerlink.domain.errors import NeedsUserError, RetryableError
from ledgerlink.jsonwire import loads

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
INTUIT_AUTHORIZE_URL = "https://appcenter.intuit.com/connect/oauth2"
INTUIT_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"  # noqa: S105 - a URL, not a secret

RECONNECT = "QuickBooks Online refused the refresh token: reconnect QuickBooks"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def authorize_url(
    endpoint: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    scopes: Iterable[str] = (ACCOUNTING_SCOPE,),
) -> str:
    """Where to send the merchant to connect a company; `state` comes back on the redirect (check it)."""
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "scope": " ".join(scopes),
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return f"{endpoint}?{query}"


def exchange_code(
    http: httpx.Client,
    token_url: str,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    *,
    now: Callable[[], datetime] = _utcnow,
) -> Tokens:
    """Trade the authorization code from the redirect for the first pair of tokens."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    return _token_call(http, token_url, client_id, client_secret, form, now(), reconnect=False)


def refresh_tokens(
    http: httpx.Client,
    token_url: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    *,
    now: Callable[[], datetime] = _utcnow,
) -> Tokens:
    """A new access token; Intuit rotates the refresh token too, and the caller must store the new one."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _token_call(http, token_url, client_id, client_secret, form, now(), reconnect=True)


def _token_call(
    http: httpx.Client,
    token_url: str,
    client_id: str,
    client_secret: str,
    form: Mapping[str, str],
    issued: datetime,
    *,
    reconnect: bool,
) -> Tokens:
    try:
        response = http.post(
            token_url,
            data=dict(form),
            auth=httpx.BasicAuth(client_id, client_secret),
            headers={"Accept": "application/json"},
        )
    except httpx.TransportError as exc:
        # Safe to retry: Intuit keeps a superseded refresh token valid for a day.
        raise RetryableError(f"QuickBooks Online token endpoint unreachable: {exc}", retry_after=5.0) from exc
    body = _json(response)
    if response.status_code >= 500 or response.status_code == 429:
        raise RetryableError(f"QuickBooks Online token endpoint answered {response.status_code}", retry_after=5.0)
    if response.status_code >= 400:
        error = str(body.get("error") or response.status_code)
        if reconnect and error == "invalid_grant":
            raise NeedsUserError(RECONNECT, action="reconnect")
        described = body.get("error_description")
        raise NeedsUserError(
            f"QuickBooks Online refused the connection ({error}{f': {described}' if described else ''}): "
            "reconnect QuickBooks",
            action="reconnect",
        )
    try:
        access = str(body["access_token"])
        refresh = str(body["refresh_token"])
        expires_in = float(body.get("expires_in") or 3600)
    except (KeyError, TypeError, ValueError) as exc:
        raise RetryableError("QuickBooks Online token endpoint answered without tokens", retry_after=5.0) from exc
    refresh_in = body.get("x_refresh_token_expires_in")
    return Tokens(
        access_token=access,
        refresh_token=refresh,
        access_expires_at=issued + timedelta(seconds=expires_in),
        refresh_expires_at=issued + timedelta(seconds=float(refresh_in)) if refresh_in is not None else None,
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
