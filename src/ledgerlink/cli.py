"""The command line: demo, sync, preview, connect, settings, db, sandbox, bench, worker, beat."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ledgerlink.domain.errors import MappingError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="ledgerlink: selling channels ⇄ QuickBooks.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
sandbox_app = typer.Typer(no_args_is_help=True, help="Run a local sandbox of an external service.")
connect_app = typer.Typer(no_args_is_help=True, help="Connect a company to QuickBooks and its selling channels.")
settings_app = typer.Typer(no_args_is_help=True, help="Show and change a channel connection's settings.")
app.add_typer(db_app, name="db")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(connect_app, name="connect")
app.add_typer(settings_app, name="settings")

out = Console()
err = Console(stderr=True)


def main() -> None:
    """Console entry point."""
    app()


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


# -- db ------------------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (SQLite file by default, LEDGERLINK_DATABASE_URL otherwise)."""
    from ledgerlink.bootstrap import bootstrap

    application = bootstrap(upgrade=True)
    out.print(f"database is up to date: {application.db.engine.url.render_as_string(hide_password=True)}")


# -- preview -------------------------------------------------------------------------------------------------


@app.command()
def preview(
    order: Annotated[Path, typer.Option("--order", help="the order in the channel's own JSON (bare or {'order': …})")],
    channel: Annotated[str, typer.Option("--channel", help="channel kind, e.g. shopify")] = "shopify",
    transaction_type: Annotated[
        str | None,
        typer.Option("--transaction-type", help="sales_receipt | invoice | sales_order | sales_order_invoice_payment"),
    ] = None,
    books: Annotated[str, typer.Option("--books", help="qbo")] = "qbo",
    settings_file: Annotated[Path | None, typer.Option("--settings", help="ChannelSettings as JSON")] = None,
) -> None:
    """Print, as JSON, exactly what would be posted for one order. No connection or database needed."""
    from ledgerlink.preview import PreviewError, preview_order

    try:
        result = preview_order(
            order_path=order,
            channel=channel,
            books=books,
            transaction_type=transaction_type,
            settings_path=settings_file,
        )
    except PreviewError as exc:
        raise _fail(f"error: {exc}") from None
    except MappingError as exc:
        raise _fail(f"error: {exc}") from None
    sys.stdout.write(result + "\n")


# -- sync ----------------------------------------------------------------------------------------------------


def _parse_date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"error: {name} must be a date like 2026-11-25, got {value!r}") from None


@app.command()
def sync(
    connection: Annotated[str | None, typer.Option("--connection", help="channel connection name")] = None,
    since: Annotated[str | None, typer.Option("--since", help="orders created on or after DATE")] = None,
    until: Annotated[str | None, typer.Option("--until", help="orders created on or before DATE")] = None,
    orders: Annotated[str | None, typer.Option("--orders", help="order numbers, e.g. 1001,1002")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be posted; change nothing")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="send failed postings again")] = False,
    celery: Annotated[
        bool, typer.Option("--celery", help="queue the syncs for the Celery workers instead of running them here")
    ] = False,
) -> None:
    """Pull, plan and post now ("Sync now"). A date range or order numbers make it a manual sync."""
    from sqlalchemy import select

    from ledgerlink.bootstrap import bootstrap
    from ledgerlink.store.models import Connection
    from ledgerlink.sync.connections import find_connection
    from ledgerlink.sync.engine import RunOptions

    options = RunOptions(
        created_from=_parse_date(since, "--since"),
        created_to=_parse_date(until, "--until"),
        order_numbers=tuple(n.strip().lstrip("#") for n in (orders or "").split(",") if n.strip()),
        dry_run=dry_run,
        retry_failed=retry_failed,
    )
    application = bootstrap()
    with application.db.session() as session:
        if connection:
            targets = [find_connection(session, connection)]
        else:
            targets = list(session.scalars(select(Connection).where(Connection.role == "channel")))
        names = [(c.id, c.name) for c in targets]
        kinds = {cid: kind for cid, kind in session.execute(select(Connection.id, Connection.kind))}
        books_kinds = {c.id: kinds.get(c.books_id) if c.books_id else None for c in targets}
    if not names:
        raise _fail("error: no channel connections yet: add one with `ledgerlink connect shopify`")
    if celery:
        _queue_for_workers(application, [c for c, _n in names], options)
        raise typer.Exit(0)
    engine = application.engine()
    worst = 0
    for channel_id, name in names:
        report = engine.run(channel_id, options)
        from ledgerlink.reporting import print_report

        print_report(out, name, report, desktop=books_kinds.get(channel_id) == "qbd")
        if report.error:
            worst = 1
    raise typer.Exit(worst)


def _queue_for_workers(application: Any, channel_ids: list[int], options: Any) -> None:
    from ledgerlink.store.models import Connection
    from ledgerlink.sync.celery_app import install_dispatcher
    from ledgerlink.sync.jobs import enqueue

    if not application.settings.broker_url:
        raise _fail("error: --celery needs LEDGERLINK_BROKER_URL (redis://… or amqp://…)")
    if options.dry_run:
        raise _fail("error: --dry-run runs here; leave out --celery")
    install_dispatcher(application)
    job_options: dict[str, Any] = {}
    if options.created_from:
        job_options["since"] = options.created_from.isoformat()
    if options.created_to:
        job_options["until"] = options.created_to.isoformat()
    if options.order_numbers:
        job_options["orders"] = list(options.order_numbers)
    if options.retry_failed:
        job_options["retry_failed"] = True
    for channel_id in channel_ids:
        with application.db.session() as session:
            conn = session.get(Connection, channel_id)
            job = enqueue(session, conn, trigger="manual", options=job_options, requested_by="cli")
            job_id, name = job.id, conn.name
        out.print(f"queued sync job {job_id} for {name!r}")


# -- workers -------------------------------------------------------------------------------------------------


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="tasks run at once (processes)")] = 1,
    queues: Annotated[
        str | None, typer.Option("--queues", help="comma-separated Celery queues (default: LEDGERLINK_QUEUE)")
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel")] = "INFO",
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="serve this worker's Prometheus metrics on this port")
    ] = None,
) -> None:
    """Run a Celery worker: sync passes and pushes from the queue (needs LEDGERLINK_BROKER_URL)."""
    from ledgerlink.bootstrap import bootstrap
    from ledgerlink.config import Settings
    from ledgerlink.sync.celery_app import create_celery, run_worker
    from ledgerlink.sync.ratelimit import ScaleOutSettings

    settings = Settings()
    if not settings.broker_url:
        raise _fail("error: set LEDGERLINK_BROKER_URL (redis://… or amqp://…) to run a worker")
    bootstrap(settings).db.dispose()  # migrations once, here; each task process opens its own pool
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    names = [q.strip() for q in (queues or ScaleOutSettings().queue).split(",") if q.strip()]
    raise typer.Exit(run_worker(create_celery(settings), concurrency=concurrency, queues=names, loglevel=loglevel))


@app.command()
def beat(loglevel: Annotated[str, typer.Option("--loglevel")] = "INFO") -> None:
    """Run Celery beat: the schedule tick every LEDGERLINK_TICK_SECONDS (30). Run exactly one."""
    from ledgerlink.bootstrap import bootstrap
    from ledgerlink.config import Settings
    from ledgerlink.sync.celery_app import create_celery, run_beat

    settings = Settings()
    if not settings.broker_url:
        raise _fail("error: set LEDGERLINK_BROKER_URL (redis://… or amqp://…) to run beat")
    bootstrap(settings).db.dispose()
    raise typer.Exit(run_beat(create_celery(settings), data_dir=settings.data_dir, loglevel=loglevel))


# -- connect -------------------------------------------------------------------------------------------------


def _company(session: Any, name: str) -> Any:
    from sqlalchemy import select

    from ledgerlink.store.models import Company
    from ledgerlink.sync.connections import create_company

    found = session.scalars(select(Company).where(Company.name == name)).first()
    return found or create_company(session, name)


@connect_app.command("qbo")
def connect_qbo(
    realm_id: Annotated[str, typer.Option("--realm-id", help="the QuickBooks company id")],
    client_id: Annotated[str, typer.Option("--client-id", envvar="LEDGERLINK_QBO_CLIENT_ID")],
    client_secret: Annotated[str, typer.Option("--client-secret", envvar="LEDGERLINK_QBO_CLIENT_SECRET")],
    refresh_token: Annotated[str, typer.Option("--refresh-token", envvar="LEDGERLINK_QBO_REFRESH_TOKEN")],
    company: Annotated[str, typer.Option("--company")] = "My Company",
    name: Annotated[str, typer.Option("--name")] = "quickbooks",
    environment: Annotated[str, typer.Option("--environment", help="production | sandbox")] = "production",
    api_base: Annotated[str | None, typer.Option("--api-base", help="override, e.g. a local sandbox")] = None,
    token_url: Annotated[str | None, typer.Option("--token-url")] = None,
) -> None:
    """Connect a QuickBooks Online company with an app's client id/secret and a refresh token."""
    from datetime import UTC, datetime

    from ledgerlink.bootstrap import bootstrap
    from ledgerlink.sync.connections import add_connection

    application = bootstrap()
    config: dict[str, Any] = {"realm_id": realm_id, "client_id": client_id, "environment": environment}
    if api_base:
        config["api_base"] = api_base
    if token_url:
        config["token_url"] = token_url
    expired = datetime(2000, 1, 1, tzinfo=UTC).isoformat()
    secrets = {
        "client_secret": client_secret,
        "refresh_token": refresh_token,
        "access_token": "",
        "access_expires_at": expired,
        "refresh_expires_at": "",
    }
    with application.db.session() as session:
        conn = add_connection(
            session,
            application.box,
            _company(session, company),
            name=name,
            kind="qbo",
            role="books",
            config=config,
            secrets=secrets,
        )
        out.print(f"connected QuickBooks Online company {realm_id} as {conn.name!r}")


@connect_app.command("shopify")
def connect_shopify(
    shop: Annotated[str, typer.Option("--shop", help="your-store.myshopify.com")],
    access_token: Annotated[str, typer.Option("--access-token", envvar="LEDGERLINK_SHOPIFY_TOKEN")],
    books: Annotated[str, typer.Option("--books", help="the QuickBooks connection to post to")] = "quickbooks",
    company: Annotated[str, typer.Option("--company")] = "My Company",
    name: Annotated[str, typer.Option("--name")] = "shopify",
    base_url: Annotated[str | None, typer.Option("--base-url", help="override, e.g. a local sandbox")] = None,
) -> None:
    """Connect a Shopify store (Admin API access token) and choose the QuickBooks company it posts to."""
    from ledgerlink.bootstrap import bootstrap
    from ledgerlink.domain.settings import ChannelSettings
    from ledgerlink.sync.connections import add_connection, find_connection
    from ledgerlink.sync.engine import load_settings, save_settings

    application = bootstrap()
    config: dict[str, Any] = {"shop": shop}
    if base_url:
        config["base_url"] = base_url
    with application.db.session() as session:
        owner = _company(session, company)
        books_conn = find_connection(session, books, owner.id)
        conn = add_connection(
            session,
            application.box,
            owner,
            name=name,
            kind="shopify",
            role="channel",
            config=config,
            secrets={"access_token": access_token},
            books_id=books_conn.id,
        )
        if load_settings(session, conn.id) == ChannelSettings():
            save_settings(session, conn.id, ChannelSettings(), changed_by="cli")
        out.print(f"connected Shopify store {shop} as {conn.name!r}, posting to {books_conn.name!r}")
        out.print("next: `ledgerlink settings suggest --connection " + name + "` to map the chart of accounts")


# -- settings ------------------------------------------------------------------------------------------------


@settings_app.command("show")
def settings_show(connection: Annotated[str, typer.Option("--connection")] = "shopify") -> None:
    """Print the settings in force as JSON."""
    from ledgerlink.bootstrap import bootstrap
    from ledgerlink.sync.connections import find_connection
    from ledgerlink.sync.engine import load_settings

    application = bootstrap()
    with application.db.session() as session:
        conn = find_connection(session, connection)
        current = load_settings(session, conn.id)
    sys.stdout.write(current.model_dump_json(indent=2) + "\n")
    missing = current.missing()
    if missing:
        err.print(f"still to choose: {', '.join(missing)}")


@settings_app.command("set")
def settings_set(
    file: Annotated[Path, typer.Option("--file", help="ChannelSettings JSON (as `settings show` prints)")],
    connection: Annotated[str, typer.Option("--connection")] = "shopify",
) -> None:
    """Save new settings from a JSON file (validated; the previous revision is kept)."""
    from pydantic import ValidationError

    from ledgerlink.bootstrap import bootstrap
    from ledgerlink.domain.settings import ChannelSettings
    from ledgerlink.sync.connections import find_connection
    from ledgerlink.sync.engine import save_settings

    try:
        new = ChannelSettings.model_validate_json(file.read_text())
    except OSError as exc:
        raise _fail(f"error: cannot read {file}: {exc.strerror}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _fail(f"error: {file}: field {where}: {first['msg']}") from None
    application = bootstrap()
    with application.db.session() as session:
        conn = find_connection(session, connection)
        revision = save_settings(session, conn.id, new)
    out.print(f"saved settings revision {revision} for {connection!r}")


@settings_app.command("suggest")
def settings_suggest(connection: Annotated[str, typer.Option("--connection")] = "shopify") -> None:
    """Read the chart of accounts and save the wizard's suggested account mapping."""
    from ledgerlink.bootstrap import bootstrap
    from ledgerlink.domain.catalog import CatalogQuery
    from ledgerlink.domain.defaults import suggest_accounts
    from ledgerlink.store.models import Connection
    from ledgerlink.sync.connections import find_connection
    from ledgerlink.sync.engine import load_settings, save_settings

    application = bootstrap()
    with application.db.session() as session:
        conn = find_connection(session, connection)
        books_conn = session.get(Connection, conn.books_id) if conn.books_id else None
        current = load_settings(session, conn.id)
    if books_conn is None:
        raise _fail(f"error: {connection!r} has no QuickBooks connection")
    books = application.adapters.books(books_conn)
    try:
        catalog = books.catalog(CatalogQuery())
    finally:
        books.close()
    accounts = suggest_accounts(catalog)
    updated = current.model_copy(update={"accounts": accounts})
    with application.db.session() as session:
        revision = save_settings(session, conn.id, updated)
    table = Table(title=f"Chart of accounts for {connection!r} (settings revision {revision})")
    table.add_column("setting")
    table.add_column("account")
    for key, value in accounts.model_dump().items():
        label = catalog.accounts[value].name if value in catalog.accounts else "—"
        table.add_row(key, f"{label} ({value})" if value else "—")
    out.print(table)


# -- demo, sandboxes, bench ---------------------------------------------------------------------------------


@app.command()
def demo(
    orders: Annotated[int, typer.Option("--orders", min=1, max=20000, help="how many demo orders")] = 120,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="where the demo's SQLite file goes")] = Path("var/demo"),
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="backfill: many orders synced twice; lifecycle: one order edited, paid, refunded, cancelled; "
            "from-quickbooks: sales in QuickBooks sent to ShipStation, tracking written back; "
            "desktop: orders into QuickBooks Desktop through the Web Connector, twice",
        ),
    ] = "backfill",
) -> None:
    """Sync demo orders from a local Shopify sandbox into a local QuickBooks Online sandbox, twice."""
    if scenario == "lifecycle":
        from ledgerlink.sandbox.demo_lifecycle import run_lifecycle_demo

        raise typer.Exit(run_lifecycle_demo(out, seed=seed, data_dir=data_dir))
    if scenario == "from-quickbooks":
        from ledgerlink.sandbox.demo_reverse import run_reverse_demo

        raise typer.Exit(run_reverse_demo(out))
    if scenario == "desktop":
        from ledgerlink.sandbox.demo_desktop import run_desktop_demo

        raise typer.Exit(run_desktop_demo(out, orders=orders, seed=seed, data_dir=data_dir))
    if scenario != "backfill":
        raise typer.BadParameter("choose backfill, lifecycle, from-quickbooks or desktop", param_hint="--scenario")
    from ledgerlink.sandbox.demo import run_demo

    code = run_demo(out, orders=orders, seed=seed, data_dir=data_dir)
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    demo: Annotated[bool, typer.Option("--demo", help="start the local sandboxes and a demo login")] = False,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="run the scheduler and worker here")] = True,
    celery: Annotated[
        bool | None,
        typer.Option("--celery/--embedded", help="send jobs to Celery workers (default: when a broker is set)"),
    ] = None,
) -> None:
    """Run the web app, with the embedded scheduler and worker (SQLite by default)."""
    import uvicorn

    from ledgerlink.bootstrap import bootstrap
    from ledgerlink.sync.jobs import EmbeddedRunner
    from ledgerlink.web.app import create_app

    running: list[Any] = []
    settings = None
    if demo:
        from ledgerlink.sandbox.demo import DEMO_EMAIL, DEMO_PASSWORD, create_demo_login, demo_environment

        settings, running = demo_environment(Path("var/serve"), f"http://{host}:{port}")
    application = bootstrap(settings)
    if demo:
        create_demo_login(application)
    use_celery = bool(application.settings.broker_url) if celery is None else celery
    if use_celery:
        from ledgerlink.sync.celery_app import install_dispatcher

        install_dispatcher(application)  # `ledgerlink worker` and `ledgerlink beat` do the work
    runner = EmbeddedRunner(application).start() if worker and not use_celery else None
    out.print(f"ledgerlink is running: [bold]http://{host}:{port}/[/bold]")
    if demo:
        out.print(f"demo login: [bold]{DEMO_EMAIL}[/bold] / [bold]{DEMO_PASSWORD}[/bold]")
        out.print(f"sandbox Shopify store: {settings.demo_shopify_shop if settings else ''} (token is pre-filled)")
    try:
        uvicorn.run(create_app(application), host=host, port=port, log_level="warning")
    finally:
        if runner is not None:
            runner.stop()
        for server in running:
            if hasattr(server, "stop"):
                server.stop()


@sandbox_app.command("qbo")
def sandbox_qbo(
    port: Annotated[int, typer.Option("--port")] = 8765,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    time_scale: Annotated[float, typer.Option("--time-scale", help="speed up the rate-limit clock")] = 1.0,
) -> None:
    """Run the QuickBooks Online sandbox; prints one JSON line with what a client needs."""
    from ledgerlink.sandbox.qbo import QboLimits
    from ledgerlink.sandbox.qbo.app import run_standalone

    run_standalone(host, port, QboLimits(time_scale=time_scale))


@sandbox_app.command("shopify")
def sandbox_shopify(
    port: Annotated[int, typer.Option("--port")] = 8766,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    orders: Annotated[int, typer.Option("--orders")] = 100,
    seed: Annotated[int, typer.Option("--seed")] = 7,
) -> None:
    """Run the Shopify sandbox with generated orders; prints one JSON line with what a client needs."""
    from ledgerlink.sandbox.shopify.app import run_standalone

    run_standalone(host, port, orders=orders, seed=seed)


@app.command()
def bench(quick: Annotated[bool, typer.Option("--quick", help="toy sizes, for the smoke test")] = False) -> None:
    """Benchmarks against the sandboxes under QuickBooks' limits (time-scaled): backfill vs. the ceiling, a naive
    client, many companies on Celery, steady-state lag, plan() throughput. Writes build/bench.json."""
    from ledgerlink.sandbox.bench import run_bench

    run_bench(out, quick=quick)
