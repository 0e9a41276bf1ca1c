"""A newcomer's whole journey in Chromium: sign up, connect both sandboxes, walk the wizard, sync, fix what failed.

Each test starts from an empty company on its own running app (the `live` fixture); the shared steps are the
helpers at the top. Waits are on page state (Playwright's `expect`, or a reload loop with a deadline), never on
fixed sleeps. Screenshots of every wizard step, the dashboard and the phone layout go to build/screenshots/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from livetools import Live
from playwright.sync_api import Page, expect
from sqlalchemy import select

from ledgerlink.store.models import SyncRun

pytestmark = pytest.mark.browser

SYNC_TIMEOUT = 45.0  # seconds a sync may take before a test gives up (the sandboxes run 60x faster than real life)

# Store SKUs the newcomer maps to the sandbox company's own items in the wizard's SKU mapping table, so the
# orders selling only these products post; every other product is held as unmatched.
SKU_MAP = {"TEA": "Coffee Mug", "CAFE": "Coffee Mug", "TOTE": "Red Hat", "BEANIE-1": "Red Hat", "TAMP": "T-Shirt M"}
# Orders #1017 and #1024 sell only FILTER: matching it to the item with SKU MUG-01 posts them.
MATCHED_SKU, MATCHED_ITEM, MATCHED_ORDERS = "FILTER", "MUG-01", ("1017", "1024")
# Order #1031 sells only TAMP but its total is 1.00 more than its lines: it fails until the total is adjusted.
UNBALANCED_ORDER = "1031"

WIZARD_STEPS = ("Sync Direction", "Orders", "Customers", "Accounts", "Sales Tax", "Products", "My Account")
PHONE = {"width": 390, "height": 844}
BLANK_ROWS = 3  # empty rows the SKU mapping table offers; more appear after a save


# -- shared steps ----------------------------------------------------------------------------------------------


def sign_up(live: Live, page: Page, company: str = "Bean There Coffee") -> None:
    page.goto(f"{live.url}/signup")
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    page.get_by_label("Business name").fill(company)
    page.get_by_label("Your name").fill("Bea Bookkeeper")
    page.get_by_label("E-mail").fill("bea@beanthere.test")
    page.get_by_label("Password").fill("a long password")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{live.url}/connections")
    expect(page.get_by_role("heading", name="Get started in three steps")).to_be_visible()


def connect_quickbooks(live: Live, page: Page) -> None:
    """The real OAuth round trip: our button → the sandbox's consent page → Authorize → back on Connections."""
    page.get_by_role("button", name="Connect to QuickBooks").click()
    # Intuit's page (the sandbox's) in the same browser tab.
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    assert page.url.startswith(live.app.settings.qbo_authorize_url), page.url
    expect(page.locator("body")).to_contain_text("Sandbox Company US")
    page.get_by_role("button", name="Authorize").click()
    expect(page).to_have_url(f"{live.url}/connections")
    expect(page.locator(".flash")).to_contain_text("Connected to QuickBooks company Sandbox Company US")
    books = page.locator("article.conn-card", has_text="QuickBooks Online")
    expect(books.locator(".badge")).to_have_text(re.compile("connected", re.IGNORECASE))


def connect_shopify(live: Live, page: Page) -> int:
    """The Shopify form comes filled in with the sandbox store in demo mode: just press Connect. Returns its id."""
    page.get_by_role("link", name="Connect Shopify").click()
    expect(page).to_have_url(f"{live.url}/connections/shopify")
    expect(page.locator("input[name=shop]")).not_to_have_value("")
    expect(page.locator("input[name=access_token]")).not_to_have_value("")
    page.get_by_role("button", name="Connect", exact=True).click()
    # Connecting a channel leads straight into the install wizard.
    expect(page).to_have_url(re.compile(r"/wizard/direction\?connection=\d+$"))
    expect(page.locator(".flash")).to_contain_text("Connected to Shopify store")
    return int(page.url.rsplit("=", 1)[1])


def expect_step(page: Page, number: int) -> None:
    """The progress list marks this step current and every earlier one done."""
    progress = page.get_by_role("list", name="Progress")
    expect(progress.locator("li")).to_have_count(len(WIZARD_STEPS))
    current = progress.locator("li[aria-current=step]")
    expect(current).to_have_text(f"{number}. {WIZARD_STEPS[number - 1]}")
    expect(progress.locator("li.done")).to_have_count(number - 1)
    expect(page.get_by_role("heading", level=2, name=WIZARD_STEPS[number - 1], exact=True)).to_be_visible()
    expect(page.locator(".wizard-head")).to_contain_text(f"step {number} of {len(WIZARD_STEPS)}")


def next_step(page: Page, label: str = "Next →") -> None:
    page.get_by_role("button", name=label).click()


def walk_wizard(live: Live, page: Page, shot: Callable[[int, str], None] | None = None) -> None:
    """Every step of the install wizard, as a newcomer fills it in; ends on the dashboard with a sync queued."""
    snap = shot or (lambda _number, _slug: None)

    expect_step(page, 1)
    expect(page.get_by_role("radio", name=re.compile("Shopify orders into QuickBooks"))).to_be_checked()
    expect(page.get_by_role("radio", name=re.compile("Sales from QuickBooks"))).to_be_disabled()
    snap(1, "direction")
    next_step(page)

    expect_step(page, 2)
    page.get_by_role("radio", name=re.compile(r"^Invoices")).check()
    snap(2, "orders")
    next_step(page)

    expect_step(page, 3)
    expect(page.get_by_role("radio", name=re.compile("One customer per buyer"))).to_be_checked()
    snap(3, "customers")
    next_step(page)

    expect_step(page, 4)
    deposit = page.get_by_label("Deposit Account")
    # The drop-downs are filled from the QuickBooks company, each with the accounts of the right types.
    deposit_names = deposit.locator("option").all_inner_texts()
    assert "Undeposited Funds" in deposit_names
    assert "Checking" in deposit_names
    assert "Sales of Product Income" not in deposit_names
    assert "Sales of Product Income" in page.get_by_label("Item Income Account").locator("option").all_inner_texts()
    expect(deposit.locator("option:checked")).to_have_text("Undeposited Funds")
    expect(page.get_by_label("Accounts Receivable Account").locator("option:checked")).to_have_text(
        "Accounts Receivable (A/R)"
    )
    snap(4, "accounts")
    next_step(page)

    expect_step(page, 5)
    expect(page.get_by_role("radio", name=re.compile("tax on the transaction"))).to_be_checked()
    snap(5, "tax")
    next_step(page)

    expect_step(page, 6)
    page.get_by_role("radio", name=re.compile("Hold the order and list the product as unmatched")).check()
    mappings = list(SKU_MAP.items())
    fill_sku_rows(page, mappings[:BLANK_ROWS])
    snap(6, "products")
    next_step(page)

    # More mappings than empty rows: Back to Products, where the saved rows come back with fresh empty ones.
    expect_step(page, 7)
    page.get_by_role("link", name="← Back").click()
    expect_step(page, 6)
    expect(page.get_by_role("radio", name=re.compile("Hold the order"))).to_be_checked()
    for row, (sku, _item) in enumerate(mappings[:BLANK_ROWS]):
        expect(page.get_by_label("Store SKU", exact=True).nth(row)).to_have_value(sku)
    fill_sku_rows(page, mappings[BLANK_ROWS:], first=BLANK_ROWS)
    next_step(page)

    expect_step(page, 7)
    page.get_by_label("Send notifications to").fill("books@beanthere.test")
    summary = page.locator("section.summary")
    expect(summary).to_contain_text("becomes an Invoice")
    expect(summary).to_contain_text("Undeposited Funds")
    expect(page.locator("section.summary .flash")).to_have_count(0)  # nothing is missing
    snap(7, "account")
    next_step(page, "Start syncing")

    expect(page).to_have_url(f"{live.url}/")
    expect(page.locator(".flash")).to_contain_text("the first sync of shopify is queued")


def fill_sku_rows(page: Page, mappings: list[tuple[str, str]], first: int = 0) -> None:
    """Type store SKU → QuickBooks item pairs into the SKU mapping table's rows, from row `first` on."""
    for row, (sku, item) in enumerate(mappings, start=first):
        page.get_by_label("Store SKU", exact=True).nth(row).fill(sku)
        page.get_by_label("QuickBooks item", exact=True).nth(row).fill(item)


def set_up(live: Live, page: Page) -> None:
    """Sign up, connect QuickBooks and Shopify, walk the wizard, and wait for the first sync to finish."""
    sign_up(live, page)
    connect_quickbooks(live, page)
    connect_shopify(live, page)
    walk_wizard(live, page)
    wait_for_last_run(live, page)


def wait_for_last_run(live: Live, page: Page, after: int = 0, timeout: float = SYNC_TIMEOUT) -> str:
    """On the dashboard: wait until no sync runs and the channel's last run shows its result; returns that result.

    While a sync is queued or running the card shows its progress, and app.js reloads the page when the job
    ends. `after`: the result must be of a run newer than that run id (a sync queued by Match or Retry).
    """
    deadline = time.monotonic() + timeout
    while True:
        progress = page.locator(".sync-progress")
        if progress.count():
            expect(progress).to_have_count(0, timeout=max(deadline - time.monotonic(), 1.0) * 1000)
            continue
        badge = page.locator("section.channel-card dl.facts dd").first.locator(".badge")
        newest, finished = newest_run(live)
        if badge.count() and badge.inner_text() != "running" and newest > after and finished:
            return badge.inner_text()
        if time.monotonic() > deadline:
            raise AssertionError(f"no finished sync on the dashboard after {timeout:.0f} s")
        page.wait_for_timeout(200)  # a short pause between reloads, bounded by the deadline
        page.reload()


def newest_run(live: Live) -> tuple[int, bool]:
    """The id of the newest sync run, and whether it has finished."""
    with live.app.db.session(readonly=True) as session:
        run = session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(1)).first()
        return (run.id, run.finished_at is not None) if run is not None else (0, False)


def top(locator: Any) -> float:
    """Where a visible element starts on the page, in CSS pixels from the top."""
    expect(locator).to_be_visible()
    return float(locator.evaluate("element => element.getBoundingClientRect().top + window.scrollY"))


def open_menu(page: Page, name: str) -> None:
    page.locator("nav.menu").get_by_role("link", name=name, exact=True).click()


# -- the tests -------------------------------------------------------------------------------------------------


def test_newcomer_walks_the_wizard_syncs_and_finds_the_order(live: Live, page: Page) -> None:
    sign_up(live, page)
    connect_quickbooks(live, page)
    connect_shopify(live, page)
    walk_wizard(live, page, shot=lambda number, slug: live.shot(page, f"wizard-{number}-{slug}"))

    # The dashboard shows the run's progress while it runs, then its result.
    progress = page.locator(".sync-progress")
    if progress.count():
        expect(progress.get_by_role("progressbar")).to_be_visible()
        expect(progress).to_contain_text("Syncing now")
        live.shot(page, "dashboard-progress")
    state = wait_for_last_run(live, page)
    assert state == "partial", state  # some orders are held: their products are unmatched
    card = page.locator("section.channel-card")
    expect(card.locator(".stat").first).not_to_have_text("0")  # orders synced today
    expect(card).to_contain_text("posted")
    live.shot(page, "dashboard")

    # Sync Activity → Orders: search one order by its number.
    open_menu(page, "Sync Activity")
    expect(page.get_by_role("heading", name="Sync Activity")).to_be_visible()
    page.get_by_label("Order number").fill("1003")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("#1003")
    expect(rows.first.locator(".badge")).to_have_text("posted")
    expect(rows.first).to_contain_text(re.compile(r"Invoice \S+"))
    documents = rows.first.locator("td").nth(3).inner_text()
    amount = Decimal(rows.first.locator("td.num").inner_text().split()[0])
    doc_number = re.search(r"Invoice (\S+)", documents)
    assert doc_number is not None, documents
    live.shot(page, "activity-orders")

    # The order's own page: its QuickBooks documents.
    rows.first.get_by_role("link", name="#1003").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Order #1003")
    in_books = page.locator("section.card", has=page.get_by_role("heading", name="In QuickBooks"))
    invoice_row = in_books.locator("tbody tr", has_text="Invoice").first
    expect(invoice_row).to_contain_text(doc_number.group(1))
    expect(invoice_row.locator(".badge")).to_have_text("posted")
    live.shot(page, "order-detail")

    # And QuickBooks really has it, for the order's amount.
    invoices = {row.get("DocNumber"): row for row in live.qbo.entities("Invoice")}
    assert doc_number.group(1) in invoices, sorted(str(n) for n in invoices)
    assert Decimal(str(invoices[doc_number.group(1)]["TotalAmt"])) == amount


def test_unmatched_product_is_matched_and_a_fixed_order_retried(live: Live, page: Page) -> None:
    set_up(live, page)
    first_run, _finished = newest_run(live)

    # The dashboard counts the failed orders and links to them.
    card = page.locator("section.channel-card")
    expect(card.locator(".stat.bad")).not_to_have_text("0")
    card.get_by_role("link", name="orders need attention →").click()

    # Errors: each failed order explained, with its fix.
    expect(page.locator("nav.tabs a.active")).to_have_text("Errors")
    held = page.locator("tbody tr", has=page.get_by_role("link", name=f"#{MATCHED_ORDERS[0]}", exact=True))
    expect(held.locator(".explain")).to_contain_text(f"(SKU {MATCHED_SKU}) has no matching item in QuickBooks")
    expect(held.get_by_role("link", name="Unmatched products →")).to_be_visible()
    unbalanced = page.locator("tbody tr", has=page.get_by_role("link", name=f"#{UNBALANCED_ORDER}", exact=True))
    expect(unbalanced.locator(".explain")).to_contain_text("don't add up to its total")
    expect(unbalanced.get_by_role("button", name="Retry")).to_be_visible()
    live.shot(page, "activity-errors")

    # Unmatched products: the held SKUs, each with its orders; match one to a QuickBooks item (typed by its SKU).
    open_menu(page, "Unmatched products")
    expect(page.get_by_role("heading", name="Unmatched products")).to_be_visible()
    products = page.locator("table tbody tr")
    expect(products.first).to_be_visible()
    listed = " ".join(products.all_inner_texts())
    for sku in (MATCHED_SKU, "GIFT-2", "APRON-2"):
        assert f"SKU {sku}" in listed, listed
    for sku in SKU_MAP:
        assert f"SKU {sku} ·" not in listed, listed  # mapped in the wizard: not held
    product = products.filter(has_text=f"SKU {MATCHED_SKU} ·")
    for number in MATCHED_ORDERS:
        expect(product.get_by_role("link", name=f"#{number}", exact=True)).to_be_visible()
    live.shot(page, "unmatched-products")
    product.get_by_label(f"QuickBooks item for SKU {MATCHED_SKU}").fill(MATCHED_ITEM)
    product.get_by_role("button", name="Match").click()
    expect(page.locator(".flash")).to_contain_text(f"SKU {MATCHED_SKU} now posts as “Coffee Mug”")
    expect(page.locator(".flash")).to_contain_text("a sync is queued")
    expect(page.locator("table tbody tr").filter(has_text=f"SKU {MATCHED_SKU} ·")).to_have_count(0)

    # The re-sync runs on its own; then its orders are posted.
    open_menu(page, "Dashboard")
    wait_for_last_run(live, page, after=first_run)
    for number in MATCHED_ORDERS:
        expect_posted(live, page, number)

    # Fix the unbalanced order the way its explanation says, then Retry it from the Errors tab.
    after_match, _finished = newest_run(live)
    page.goto(f"{live.url}/activity?tab=errors")
    unbalanced = page.locator("tbody tr", has=page.get_by_role("link", name=f"#{UNBALANCED_ORDER}", exact=True))
    unbalanced.get_by_role("link", name="Settings → Products →").click()
    page.get_by_role("checkbox", name=re.compile("add an adjustment line")).check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Saved as revision")
    open_menu(page, "Sync Activity")
    page.locator("nav.tabs").get_by_role("link", name="Errors").click()
    unbalanced = page.locator("tbody tr", has=page.get_by_role("link", name=f"#{UNBALANCED_ORDER}", exact=True))
    unbalanced.get_by_role("button", name="Retry").click()
    expect(page.locator(".flash")).to_contain_text(f"Order {UNBALANCED_ORDER} will be retried")
    open_menu(page, "Dashboard")
    wait_for_last_run(live, page, after=after_match)
    expect_posted(live, page, UNBALANCED_ORDER)
    page.goto(f"{live.url}/activity?tab=errors")
    expect(page.get_by_role("link", name=f"#{UNBALANCED_ORDER}", exact=True)).to_have_count(0)


def expect_posted(live: Live, page: Page, number: str) -> str:
    """Sync Activity → Orders, searched by number: the order is posted as an invoice; returns its number."""
    page.goto(f"{live.url}/activity")
    page.get_by_label("Order number").fill(number)
    page.get_by_role("button", name="Search").click()
    row = page.locator("table tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("posted")
    documents = row.locator("td").nth(3)
    expect(documents).to_contain_text(re.compile(r"Invoice \S+"))
    found = re.search(r"Invoice (\S+)", documents.inner_text())
    assert found is not None
    return found.group(1)


def test_transaction_type_is_changed_through_settings(live: Live, page: Page) -> None:
    set_up(live, page)

    # Settings → the channel → Order Settings → Orders to QuickBooks → Manual Sync and Marketplace Settings →
    # Transaction Type → Save, in that order on the page.
    open_menu(page, "Settings")
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    page.locator("aside.sidebar").get_by_role("link", name=re.compile("^shopify")).click()
    expect(page).to_have_url(re.compile(r"/settings/\d+/orders$"))
    names = ("Order Settings", "Orders to QuickBooks", "Manual Sync and Marketplace Settings", "Transaction Type")
    headings = [page.get_by_role("heading", name=name, exact=True) for name in names]
    tops = [top(heading) for heading in headings]
    assert tops == sorted(tops), dict(zip(names, tops, strict=True))
    expect(page.get_by_role("radio", name=re.compile(r"^Invoices"))).to_be_checked()  # the wizard's choice
    page.get_by_role("radio", name=re.compile(r"^Sales Receipts")).check()
    save = page.get_by_role("button", name="Save")
    assert top(save) > tops[-1]
    live.shot(page, "settings-orders")
    save.click()
    expect(page.locator(".flash")).to_contain_text(re.compile(r"Saved as revision \d+\."))

    # It persisted: a fresh load shows Sales Receipts.
    page.reload()
    expect(page.locator(".flash")).to_have_count(0)
    expect(page.get_by_role("radio", name=re.compile(r"^Sales Receipts"))).to_be_checked()
    expect(page.get_by_role("radio", name=re.compile(r"^Invoices"))).not_to_be_checked()

    # History: the newest revision, by whom, and what changed.
    page.locator("nav.tabs").get_by_role("link", name="History").click()
    newest = page.locator("article.revision").first
    expect(newest).to_contain_text("bea@beanthere.test")
    change = newest.locator("tbody tr", has_text="transaction_type")
    expect(change).to_have_count(1)
    expect(change.locator("td").nth(1)).to_contain_text("invoice")
    expect(change.locator("td").nth(2)).to_contain_text("sales_receipt")
    live.shot(page, "settings-history")


def test_phone_sized_dashboard_and_wizard(live: Live, browser: Any) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        sign_up(live, page)
        connect_quickbooks(live, page)
        connect_shopify(live, page)
        expect_step(page, 1)
        assert_fits_the_phone(page)
        # The menu folds behind its toggle on a phone, and opens when pressed.
        menu = page.locator("nav.menu")
        expect(menu).to_be_hidden()
        live.shot(page, "phone-wizard-1-direction")
        page.locator("label.menu-button").click()
        expect(menu).to_be_visible()
        expect(menu.get_by_role("link", name="Sync Activity")).to_be_visible()
        live.shot(page, "phone-menu-open")
        page.locator("label.menu-button").click()
        expect(menu).to_be_hidden()

        walk_wizard(live, page)
        wait_for_last_run(live, page)
        live.shot(page, "phone-dashboard")
        assert_fits_the_phone(page)
    finally:
        context.close()


def assert_fits_the_phone(page: Page) -> None:
    """Nothing on the page is wider than the phone's screen (no sideways scrolling)."""
    width = int(page.evaluate("document.documentElement.scrollWidth"))
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a {PHONE['width']} px phone"
