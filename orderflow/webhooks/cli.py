"""``orderflow webhooks``: endpoints and their health, retrying exhausted deliveries,
replaying a window."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from orderflow.webhooks import endpoints, operations

UnitOfWork = Callable[[], AbstractContextManager[Session]]


def build(unit_of_work: UnitOfWork) -> typer.Typer:
    webhooks = typer.Typer(help="Outgoing webhooks: health, retry, replay.", no_args_is_help=True)

    @webhooks.command("list")
    def list_endpoints() -> None:
        """Every endpoint with its health: open deliveries, the oldest one's age, exhausted
        ones, the last success and since when it has only failed."""
        with unit_of_work() as session:
            rows = operations.endpoint_health(session)
        if not rows:
            typer.echo("no webhook endpoints")
        for row in rows:
            typer.echo(
                f"{row.id} {row.status:8} open={row.open_deliveries} "
                f"oldest={row.oldest_open_seconds:.0f}s exhausted={row.exhausted} "
                f"last_success={_when(row.last_success)} "
                f"failing_since={_when(row.failing_since)} {row.url}"
            )

    @webhooks.command("retry-failed")
    def retry_failed(
        endpoint: Annotated[str | None, typer.Option(help="only this endpoint (we_…)")] = None,
    ) -> None:
        """Give every exhausted delivery one more attempt now."""
        with unit_of_work() as session:
            count = operations.retry_exhausted(session, endpoint)
            session.commit()
        typer.echo(f"{count} exhausted deliveries will be sent again")

    @webhooks.command()
    def replay(
        endpoint: Annotated[str, typer.Argument(help="the endpoint (we_…)")],
        since: Annotated[datetime, typer.Option(help="RFC 3339; events from then")],
        until: Annotated[datetime | None, typer.Option(help="events before then")] = None,
    ) -> None:
        """Send the endpoint the events of a window again, with their original ids."""
        with unit_of_work() as session:
            count = endpoints.replay(session, endpoint, since, until, None)
            session.commit()
        typer.echo(f"{count} events will be sent again to {endpoint}")

    return webhooks


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"
