"""A Shopify app calling the sandbox's Admin REST API over HTTP, as real apps do (the refunds and fulfilment
clients of the demo and the tests build on it; ledgerlink itself never writes to Shopify's orders)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

import httpx

if TYPE_CHECKING:
    from ledgerlink.sandbox.shopify.app import ShopifySandbox


class AdminApiClient:
    """GET and POST under `/admin/api/<version>/` with the shop's access token."""

    def __init__(self, base_url: str, access_token: str, api_version: str, client: httpx.Client | None = None) -> None:
        self.root = f"{base_url.rstrip('/')}/admin/api/{api_version}"
        self.headers = {"X-Shopify-Access-Token": access_token}
        self.client = client or httpx.Client(timeout=10.0)

    @classmethod
    def for_sandbox(cls, sandbox: ShopifySandbox, base_url: str) -> Self:
        return cls(base_url, sandbox.access_token, sandbox.api_version)

    def _refused(self, message: str) -> Exception:
        """The error a refused POST raises (each client has its own)."""
        return RuntimeError(message)

    def _get(self, path: str) -> dict[str, Any]:
        response = self.client.get(f"{self.root}/{path}", headers=self.headers)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = self.client.post(f"{self.root}/{path}", headers=self.headers, json=body)
        if response.status_code >= 400:
            raise self._refused(f"Shopify answered {response.status_code}: {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    def close(self) -> None:
        self.client.close()
