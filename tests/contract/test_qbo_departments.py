"""Locations (QuickBooks Online's Department entity) over real HTTP: the sandbox knows them, `QboBooks` reads them
into the catalog, and a sale with a rule's location is posted with its DepartmentRef."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from test_qbo_books import WANTED, Env, MemoryTokens, request, sale

from ledgerlink.books.base import PushStatus, Tokens
from ledgerlink.books.qbo import QboConfig, connect
from ledgerlink.books.qbo.client import NoPacer
from ledgerlink.domain.catalog import CatalogQuery
from ledgerlink.domain.documents import Ref
from ledgerlink.domain.errors import PermanentError
from ledgerlink.sandbox.qbo import QboLimits, QboSandbox
from ledgerlink.sandbox.server import serve

pytestmark = pytest.mark.contract


@pytest.fixture
def env() -> Iterator[Env]:
    sandbox = QboSandbox(limits=QboLimits(enabled=False))
    server = serve(sandbox.app)
    creds = sandbox.credentials(server.base_url)
    tokens = MemoryTokens(
        Tokens(creds["access_token"], creds["refresh_token"], datetime.now(UTC) + timedelta(minutes=30))
    )
    fields = ("realm_id", "client_id", "client_secret", "api_base", "token_url", "authorize_url", "redirect_uri")
    config = QboConfig.model_validate({**{k: creds[k] for k in fields}, "throttle_wait": 0.05, "retry_backoff": 0.01})
    books = connect(config, tokens, pacer=NoPacer())
    try:
        yield Env(sandbox, server, books, tokens, creds)
    finally:
        books.close()
        server.stop()


def test_locations_are_read_into_the_catalog_and_posted_as_department_ref(env: Env) -> None:
    east = env.books.client.post("Department", {"Name": "East"})
    assert east["FullyQualifiedName"] == "East"
    assert east["SubDepartment"] is False
    closed = env.books.client.post("Department", {"Name": "Closed store", "Active": False})
    catalog = env.books.catalog(WANTED)
    assert catalog.find_department("east") == east["Id"]
    assert catalog.find_department("Closed store") is None  # inactive locations are not offered
    assert catalog.find_department(closed["Id"]) is None

    doc = sale(catalog, department=Ref(key="department:east", name="East", id=east["Id"]))
    (result,) = env.books.push([request(doc)])
    assert result.status is PushStatus.POSTED, result.error
    stored = env.sandbox.entity("SalesReceipt", str(result.remote_id))
    assert stored["DepartmentRef"] == {"value": east["Id"], "name": "East"}


def test_the_sandbox_refuses_a_location_it_does_not_have(env: Env) -> None:
    catalog = env.books.catalog(CatalogQuery(skus={"HAT-RED", "MUG-01"}, customer_names={"Cool Cars"}))
    assert catalog.departments == {}
    doc = sale(catalog, department=Ref(key="department:x", name="Nowhere", id="999"))
    (result,) = env.books.push([request(doc)])
    assert result.status is not PushStatus.POSTED
    assert "Department with Id 999 does not exist" in result.error
    with pytest.raises(PermanentError):
        env.books.client.post("Department", {"Name": ""})
