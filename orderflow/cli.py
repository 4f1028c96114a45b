"""The ``orderflow`` command: operate a running system."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orderflow.auth.service import ensure_admin
from orderflow.db import Database, make_engine
from orderflow.demo import seed_demo_products
from orderflow.migrate import upgrade_to_head
from orderflow.models import OutboxMessage
from orderflow.settings import ConfigError, Settings

app = typer.Typer(
    help="Operate orderflow: migrations, admin, demo data, outbox.", no_args_is_help=True
)


def _settings() -> Settings:
    try:
        return Settings()
    except (ConfigError, ValueError) as error:
        typer.echo(f"configuration error: {_first_line(error)}", err=True)
        raise typer.Exit(2) from None


def _first_line(error: Exception) -> str:
    text = str(error)
    for marker in ("Value error, ",):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip().splitlines()[0]


@contextmanager
def _unit_of_work() -> Iterator[Session]:
    settings = _settings()
    try:
        database = Database(make_engine(settings, pool_size=1))
    except ConfigError as error:
        typer.echo(f"configuration error: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        with database.unit_of_work() as session:
            yield session
    finally:
        database.dispose()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic upgrade head)."""
    settings = _settings()
    if not settings.database_url:
        typer.echo("configuration error: ORDERFLOW_DATABASE_URL is not set", err=True)
        raise typer.Exit(2)
    upgrade_to_head(settings.database_url)
    typer.echo("database schema is up to date")


@app.command("create-admin")
def create_admin() -> None:
    """Create or update the admin from ORDERFLOW_ADMIN_EMAIL / ORDERFLOW_ADMIN_PASSWORD."""
    settings = _settings()
    with _unit_of_work() as session:
        user = ensure_admin(
            session, settings.admin_email, settings.admin_password.get_secret_value()
        )
        typer.echo(f"admin {user.email} ({user.id}) is ready")


@app.command("seed-demo")
def seed_demo() -> None:
    """Add the demo products that are missing."""
    with _unit_of_work() as session:
        typer.echo(f"{seed_demo_products(session)} demo products created")


@app.command()
def outbox() -> None:
    """Show the outbox backlog and the age of its oldest undispatched message."""
    with _unit_of_work() as session:
        backlog, oldest = session.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.dispatched_at.is_(None)
            )
        ).one()
        age = session.scalar(select(func.extract("epoch", func.now() - oldest))) if oldest else 0
        typer.echo(f"outbox backlog: {backlog} messages, oldest {float(age or 0):.1f} s")


def main() -> None:
    app(prog_name="orderflow")


if __name__ == "__main__":
    main()
