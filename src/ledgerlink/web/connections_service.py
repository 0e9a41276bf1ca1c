"""What the Connections pages do, apart from HTTP: find a company's connections, check credentials with a
live call, store QuickBooks tokens. Everything here is scoped to one company."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ledgerlink.books.base import Tokens
from ledgerlink.books.qbo import oauth
from ledgerlink.config import Settings
from ledgerlink.http import new_client
from ledgerlink.store.crypto import SecretBox
from ledgerlink.store.models import Company, Connection, Posting
from ledgerlink.sync.connections import add_connection
from ledgerlink.sync.tokens import tokens_to_secrets

SHOPIFY_API_VERSION = "2025-01"
SHIPSTATION_BASE = "https://ssapi.shipstation.com"
QBO_CALLBACK_PATH = "/connections/qbo/callback"
# Short timeouts for the checks a person waits for: a wrong address must fail in seconds, not minutes.
CHECK_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")

KIND_LABELS = {
    "qbo": "QuickBooks Online",
    "qbd": "QuickBooks Desktop",
    "shopify": "Shopify",
    "shipstation": "ShipStation",
}
STATUS_LABELS = {
    "ok": "connected",
    "needs_reconnect": "needs reconnecting",
    "error": "error",
    "disconnected": "disconnected",
    "waiting": "waiting for the Web Connector",
}


class CheckFailed(Exception):
    """A live check of credentials failed; `field` names the form field the message belongs next to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def company_connections(session: Session, company_id: int) -> list[Connection]:
    """All connections of a company: the books first, then the channels, oldest first."""
    rows = session.scalars(select(Connection).where(Connection.company_id == company_id).order_by(Connection.id))
    return sorted(rows, key=lambda c: (c.role != "books", c.id))


def owned_connection(session: Session, company_id: int, connection_id: int) -> Connection | None:
    """The connection if it belongs to the company, else None (the caller answers 404)."""
    conn = session.get(Connection, connection_id)
    if conn is None or conn.company_id != company_id:
        return None
    return conn


def books_connection(session: Session, company_id: int) -> Connection | None:
    """The company's books connection (one per company), if any."""
    return session.scalars(
        select(Connection)
        .where(Connection.company_id == company_id, Connection.role == "books")
        .order_by(Connection.id)
    ).first()


def unique_name(session: Session, company_id: int, base: str) -> str:
    """`base`, or `base-2`, `base-3`… : connection names are unique per company."""
    taken = set(session.scalars(select(Connection.name).where(Connection.company_id == company_id)))
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def link_orphan_channels(session: Session, company_id: int, books_id: int) -> int:
    """Channels connected before QuickBooks post to it from now on; returns how many were linked."""
    result = session.execute(
        update(Connection)
        .where(Connection.company_id == company_id, Connection.role == "channel", Connection.books_id.is_(None))
        .values(books_id=books_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- QuickBooks Online ---------------------------------------------------------------------------------------


def qbo_redirect_uri(settings: Settings) -> str:
    """Where Intuit sends the merchant back; it must be registered on the Intuit app exactly like this."""
    return settings.public_url.rstrip("/") + QBO_CALLBACK_PATH


def qbo_authorize_endpoint(settings: Settings) -> str:
    return settings.qbo_authorize_url or oauth.INTUIT_AUTHORIZE_URL


def qbo_token_endpoint(settings: Settings) -> str:
    return settings.qbo_token_url or oauth.INTUIT_TOKEN_URL


def qbo_config(settings: Settings, realm_id: str) -> dict[str, Any]:
    """The plain (non-secret) config of a QuickBooks Online connection, as `QboConfig` reads it."""
    config: dict[str, Any] = {
        "realm_id": realm_id,
        "client_id": settings.qbo_client_id,
        "token_url": qbo_token_endpoint(settings),
        "authorize_url": qbo_authorize_endpoint(settings),
        "redirect_uri": qbo_redirect_uri(settings),
        "environment": settings.qbo_environment,
    }
    # Only an explicit API base is stored: without it QboConfig picks Intuit's host for the environment.
    if settings.qbo_api_base:
        config["api_base"] = settings.qbo_api_base
    return config


def exchange_qbo_code(settings: Settings, code: str, http: httpx.Client | None = None) -> Tokens:
    """Trade the authorization code for tokens at the configured token endpoint."""
    client = http or new_client(timeout=CHECK_TIMEOUT)
    try:
        return oauth.exchange_code(
            client,
            qbo_token_endpoint(settings),
            settings.qbo_client_id,
            settings.qbo_client_secret.get_secret_value(),
            code,
            qbo_redirect_uri(settings),
        )
    finally:
        if http is None:
            client.close()


def store_qbo_connection(
    session: Session, box: SecretBox, company: Company, settings: Settings, realm_id: str, tokens: Tokens
) -> tuple[Connection, bool]:
    """Create the company's QuickBooks Online connection, or give the existing one new tokens and realm.

    Returns the connection and whether it was created.
    """
    secrets: dict[str, Any] = {"client_secret": settings.qbo_client_secret.get_secret_value()}
    secrets.update(tokens_to_secrets(tokens))
    existing = books_connection(session, company.id)
    if existing is not None and existing.kind == "qbo":
        old_realm = str(existing.config.get("realm_id") or "")
        if old_realm and old_realm != realm_id and has_postings(session, existing.id):
            # The ledger's document ids belong to the first company: pointing them at another would break
            # "posted exactly once" (updates and voids would go to the wrong books).
            raise CheckFailed(
                "realm",
                f"you signed in to a different QuickBooks company (realm {realm_id}) than the one orders were "
                f"posted to (realm {old_realm}); reconnect to that company",
            )
        existing.config = qbo_config(settings, realm_id)
        existing.secrets = box.seal(secrets)
        existing.secrets_version += 1
        existing.status, existing.status_detail = "ok", ""
        link_orphan_channels(session, company.id, existing.id)
        return existing, False
    conn = add_connection(
        session,
        box,
        company,
        name=unique_name(session, company.id, "quickbooks"),
        kind="qbo",
        role="books",
        config=qbo_config(settings, realm_id),
        secrets=secrets,
    )
    link_orphan_channels(session, company.id, conn.id)
    return conn, True


def has_postings(session: Session, books_id: int) -> bool:
    """Whether anything was ever written to the ledger for this books connection."""
    return session.scalars(select(Posting.id).where(Posting.books_id == books_id).limit(1)).first() is not None


def qbo_company_name(books: Any) -> str:
    """The QuickBooks company's name (CompanyInfo), or "" when it cannot be read."""
    client = getattr(books, "client", None)
    if client is None:
        return ""
    try:
        rows = client.query("SELECT * FROM CompanyInfo")
    except Exception:  # the name is a courtesy; the connection itself is already stored
        return ""
    first = rows[0] if rows else {}
    return str(first.get("CompanyName") or first.get("LegalName") or "")


# -- Shopify -------------------------------------------------------------------------------------------------


def clean_shop_domain(value: str) -> str:
    """The bare `x.myshopify.com` host from what people paste (an admin URL, upper case, a trailing slash)."""
    host = value.strip().lower().removeprefix("https://").removeprefix("http://")
    return host.split("/", 1)[0]


def shop_domain_problem(shop: str) -> str | None:
    if not shop:
        return "enter the store's myshopify.com address"
    if not _SHOP_DOMAIN.match(shop):
        return "use the store's myshopify.com address, e.g. my-store.myshopify.com"
    return None


def check_shopify(shop: str, token: str, base_url: str = "", http: httpx.Client | None = None) -> int:
    """Ask the store how many orders it has (a cheap call that needs the read_orders scope).

    Returns the count; raises CheckFailed naming the field to fix.
    """
    root = (base_url.strip().rstrip("/") or f"https://{shop}") + f"/admin/api/{SHOPIFY_API_VERSION}"
    client = http or new_client(timeout=CHECK_TIMEOUT)
    try:
        answer = client.get(
            f"{root}/orders/count.json", params={"status": "any"}, headers={"X-Shopify-Access-Token": token}
        )
    except httpx.HTTPError as exc:
        where = "base_url" if base_url.strip() else "shop"
        raise CheckFailed(where, f"could not reach {root.split('/admin/')[0]}: {type(exc).__name__}") from None
    finally:
        if http is None:
            client.close()
    if answer.status_code in (401, 403):
        raise CheckFailed("access_token", "Shopify refused the token: copy the Admin API access token again")
    if answer.status_code == 404:
        raise CheckFailed("shop", "Shopify knows no store at this address")
    if answer.status_code == 429:
        raise CheckFailed("shop", "Shopify is busy (too many requests): try again in a minute")
    if answer.status_code >= 400:
        raise CheckFailed("shop", f"Shopify answered {answer.status_code}: try again later")
    try:
        return int(answer.json().get("count", 0))
    except (ValueError, AttributeError):
        raise CheckFailed("shop", "the address answered, but not like a Shopify store") from None


# -- ShipStation ---------------------------------------------------------------------------------------------


def check_shipstation(api_key: str, api_secret: str, base_url: str = "", http: httpx.Client | None = None) -> int:
    """List the account's stores (GET /stores with HTTP Basic); returns how many; raises CheckFailed."""
    base = (base_url.strip() or SHIPSTATION_BASE).rstrip("/")
    client = http or new_client(timeout=CHECK_TIMEOUT)
    try:
        answer = client.get(f"{base}/stores", auth=httpx.BasicAuth(api_key, api_secret))
    except httpx.HTTPError as exc:
        where = "base_url" if base_url.strip() else "api_key"
        raise CheckFailed(where, f"could not reach {base}: {type(exc).__name__}") from None
    finally:
        if http is None:
            client.close()
    if answer.status_code in (401, 403):
        raise CheckFailed("api_key", "ShipStation refused this API key and secret: copy both again")
    if answer.status_code == 429:
        raise CheckFailed("api_key", "ShipStation is busy (too many requests): try again in a minute")
    if answer.status_code >= 400:
        raise CheckFailed("api_key", f"ShipStation answered {answer.status_code}: try again later")
    try:
        stores = answer.json()
    except ValueError:
        raise CheckFailed("base_url", "the address answered, but not like ShipStation") from None
    return len(stores) if isinstance(stores, list) else 0


# -- QuickBooks Desktop --------------------------------------------------------------------------------------


def new_guid() -> str:
    """A GUID in the braces the Web Connector expects: {XXXXXXXX-XXXX-…}."""
    return "{" + str(uuid.uuid4()).upper() + "}"


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """One row of the Connections page."""

    conn: Connection
    kind_label: str
    status_label: str
    last_synced_at: datetime | None
    linked_books: str
    company_name: str = ""


def connection_views(session: Session, company_id: int, box: SecretBox) -> list[ConnectionView]:
    """The rows of the Connections page; a books connection shows the newest sync of its channels."""
    conns = company_connections(session, company_id)
    by_id = {c.id: c for c in conns}
    views: list[ConnectionView] = []
    for conn in conns:
        synced = conn.last_synced_at
        if conn.role == "books":
            times = [c.last_synced_at for c in conns if c.books_id == conn.id and c.last_synced_at is not None]
            synced = max(times) if times else None
        linked = by_id[conn.books_id].name if conn.books_id in by_id else ""
        views.append(
            ConnectionView(
                conn=conn,
                kind_label=KIND_LABELS.get(conn.kind, conn.kind),
                status_label=STATUS_LABELS.get(conn.status, conn.status.replace("_", " ")),
                last_synced_at=synced,
                linked_books=linked,
                company_name=_company_name(box, conn),
            )
        )
    return views


def _company_name(box: SecretBox, conn: Connection) -> str:
    if conn.kind != "qbo":
        return ""
    try:
        name = box.open(conn.secrets).get("company_name")
    except Exception:  # an unreadable secret must not break the page; the realm is shown instead
        return ""
    return str(name or "")
