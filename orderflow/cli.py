"""The ``orderflow`` command: operate a running system.

Every command reads the same ``ORDERFLOW_*`` settings as the API and the workers. A bad
setting or a database that cannot be used is one line on stderr naming the variable and the
fix, and exit status 2; never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from sqlalchemy.orm import Session

from orderflow import outbox as outbox_messages
from orderflow.audit import CHECK_NAMES
from orderflow.audit import audit as audit_database
from orderflow.auth.service import ensure_admin
from orderflow.db import Database, make_engine
from orderflow.demo import seed_demo_products
from orderflow.fulfilment import redrive as redriving
from orderflow.migrate import upgrade_to_head
from orderflow.settings import ConfigError, Settings
from orderflow.startup import check_database, load_settings
from orderflow.webhooks import cli as webhooks_cli

app = typer.Typer(
    help="Operate orderflow: migrations, admin, demo data, re-driving, audit, outbox, webhooks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
#: Exit status of a configuration error (bad setting, unusable database).
CONFIG_ERROR = 2
#: Exit status of ``audit`` when a promise is broken.
VIOLATIONS_FOUND = 1


def _fail(message: str) -> typer.Exit:
    typer.echo(f"orderflow: configuration error: {message}", err=True)
    return typer.Exit(CONFIG_ERROR)


def _settings(*, database: bool = True) -> Settings:
    """The settings, with the database checked reachable when the command needs it."""
    try:
        settings = load_settings()
        if database:
            check_database(settings)
    except ConfigError as error:
        raise _fail(str(error)) from None
    return settings


@contextmanager
def _unit_of_work(settings: Settings) -> Iterator[Session]:
    database = Database(make_engine(settings, pool_size=1))
    try:
        with database.unit_of_work() as session:
            yield session
    finally:
        database.dispose()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic upgrade head)."""
    settings = _settings()
    upgrade_to_head(settings.database_url)
    typer.echo("database schema is up to date")


@app.command("create-admin")
def create_admin() -> None:
    """Create or update the admin from ORDERFLOW_ADMIN_EMAIL / ORDERFLOW_ADMIN_PASSWORD."""
    settings = _settings()
    with _unit_of_work(settings) as session:
        user = ensure_admin(
            session, settings.admin_email, settings.admin_password.get_secret_value()
        )
        session.commit()
        typer.echo(f"admin {user.email} ({user.id}) is ready")


@app.command("seed-demo")
def seed_demo() -> None:
    """Add the demo products that are missing."""
    with _unit_of_work(_settings()) as session:
        created = seed_demo_products(session)
        session.commit()
    typer.echo(f"{created} demo products created")


@app.command()
def outbox() -> None:
    """Show the outbox backlog and the age of its oldest undispatched message."""
    with _unit_of_work(_settings()) as session:
        backlog, age = outbox_messages.backlog(session)
    typer.echo(f"outbox backlog: {backlog} messages, oldest {age:.1f} s")


@app.command()
def redrive(
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            min=0,
            help="Re-drive steps owed for longer than this many seconds "
            "[default: ORDERFLOW_SWEEP_STALL_SECONDS].",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be re-driven; change nothing.")
    ] = False,
) -> None:
    """Re-drive stuck orders: steps owed for longer than --older-than seconds, and orders
    parked on a provider failure (payment_provider_unavailable, ..._misconfigured) once the
    cause is fixed. Each is scheduled again through the outbox; steps are idempotent."""
    settings = _settings()
    threshold = settings.sweep_stall_seconds if older_than is None else older_than
    with _unit_of_work(settings) as session:
        items = redriving.find_redrivable(session, threshold)
    if not items:
        typer.echo(f"nothing to re-drive (no step owed for more than {threshold:g} s)")
        return
    if dry_run:
        for item in items:
            typer.echo(f"would re-drive {item.describe()}")
        typer.echo(f"{len(items)} to re-drive (dry run: nothing changed)")
        return
    done = _redrive_all(settings, items)
    for item in done:
        typer.echo(f"re-drove {item.describe()}")
    skipped = len(items) - len(done)
    typer.echo(f"{len(done)} re-driven" + (f", {skipped} had moved on" if skipped else ""))


def _redrive_all(
    settings: Settings, items: list[redriving.RedriveItem]
) -> list[redriving.RedriveItem]:
    """One transaction per item, so a failure part-way keeps what was done."""
    done = []
    database = Database(make_engine(settings, pool_size=1))
    progress = Progress(
        TextColumn("re-driving"), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True)
    )
    try:
        with progress:
            for item in progress.track(items):
                with database.unit_of_work() as session:
                    if redriving.redrive(session, item):
                        done.append(item)
                    session.commit()
    finally:
        database.dispose()
    return done


@app.command()
def audit() -> None:
    """Check the promises over the whole database; print each violation; exit 1 on any."""
    with _unit_of_work(_settings()) as session:
        violations = audit_database(session)
    for violation in violations:
        typer.echo(str(violation))
    if violations:
        typer.echo(f"{len(violations)} violations found", err=True)
        raise typer.Exit(VIOLATIONS_FOUND)
    typer.echo(f"no violations ({len(CHECK_NAMES)} checks passed)")


# ``orderflow webhooks list | retry-failed | replay`` (issue 15)
app.add_typer(webhooks_cli.build(lambda: _unit_of_work(_settings())), name="webhooks")


def main() -> None:
    app(prog_name="orderflow")


if __name__ == "__main__":
    main()
