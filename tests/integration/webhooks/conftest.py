"""What the webhook tests share: a real receiver that verifies every delivery with the
Standard Webhooks library, and endpoints subscribed to it (made through the service, as
the API makes them), whose secrets the receiver verifies with."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from orderflow.db import Database
from orderflow.webhooks import endpoints
from tests.receivers import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def subscribe(clean_database: Database, receiver: Receiver) -> Callable[..., tuple[str, str]]:
    def make(path: str, *types: str) -> tuple[str, str]:
        with clean_database.unit_of_work() as session:
            created = endpoints.create_endpoint(
                session, receiver.url + path, list(types), None, allow_private=True
            )
            endpoint_id = created.endpoint.id
            session.commit()
        receiver.secrets.append(created.secret)
        return endpoint_id, created.secret

    return make
