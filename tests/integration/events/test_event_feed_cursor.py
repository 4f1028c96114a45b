"""The feed's cursor never skips: writers whose transactions hold their events open for a
random while (so ids and positions are given out in another order than the transactions
commit), some rolling back, and a reader paging with ``after`` all along. The reader must
see every committed event exactly once, and none of a rolled-back transaction."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text

from orderflow.db import Database
from orderflow.events import feed, recorder
from orderflow.models import Product, User
from orderflow.orders import service as orders
from tests.conftest import place_command

WRITERS = 6
ORDERS_PER_WRITER = 12


class Rolledback(Exception):
    pass


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_paging_reader_sees_every_event_exactly_once(
    clean_database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
    seed: int,
) -> None:
    customer, product = make_user(), make_product(stock=10_000)
    committed: set[str] = set()
    lock = threading.Lock()
    writers_done = threading.Event()
    errors: list[BaseException] = []

    def write(rng: random.Random) -> None:
        for _ in range(ORDERS_PER_WRITER):
            time.sleep(rng.uniform(0, 0.01))
            roll_back = rng.random() < 0.2
            try:
                with clean_database.unit_of_work() as session:
                    order = orders.place_order(session, place_command(customer.id, (product.id, 1)))
                    recorder.write_pending(session)  # the event row exists from now on...
                    (event_id,) = session.scalars(
                        text("SELECT id FROM events WHERE subject_id = :id"), {"id": order.id}
                    )
                    time.sleep(rng.uniform(0, 0.08))  # ...while its transaction stays open
                    if roll_back:
                        raise Rolledback
                    session.commit()
            except Rolledback:
                continue
            with lock:
                committed.add(event_id)

    def read() -> list[str]:
        seen: list[str] = []
        after = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with clean_database.unit_of_work() as session:
                page = feed.read_page(session, after, None, limit=4)
            seen += [item["id"] for item in page.items]
            after = page.next_cursor
            if not page.has_more:
                if writers_done.is_set() and set(seen) >= committed:
                    return seen
                time.sleep(0.005)
        return seen

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as error:
                errors.append(error)

        return run

    result: list[str] = []
    reader = threading.Thread(target=guarded(lambda: result.extend(read())))
    threads = [
        threading.Thread(target=guarded(lambda n=n: write(random.Random(seed * 100 + n))))
        for n in range(WRITERS)
    ]
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writers_done.set()
    reader.join()
    assert errors == []
    assert len(committed) > WRITERS * ORDERS_PER_WRITER // 2
    assert len(result) == len(set(result)), "an event was served twice"
    assert set(result) == committed, "an event was skipped, or a rolled-back one served"
