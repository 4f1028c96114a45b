"""Worker hosts cut off mid-flow: one for 30 s (then its cable is back), one for good, while
orders are placed and the warehouse ships the confirmed ones with labels bought in the
pipeline. Nothing accepted is lost, nothing is charged, e-mailed or labelled twice, what
the cut hosts held is re-driven by the sweeper (or redelivered) to the hosts that remain,
and ``orderflow audit`` finds nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from tests.hosts.conftest import HostedSystem
from tests.hosts.shipping import Warehouse
from tests.invariants import (
    assert_no_double_effects_at_providers,
    assert_promises_kept,
    wait_for_rest,
)
from tests.system import wait_until

ORDERS = int(os.environ.get("ORDERFLOW_HOSTS_FAULT_ORDERS", "90"))
CUT_SECONDS = 30.0
REDRIVEN = "re-drove stalled orders"


def test_worker_hosts_cut_off_mid_flow(hosted_factory: Callable[..., HostedSystem]) -> None:
    # The sweeper looks every second for orders stalled for 5 s (defaults: 10 s and 30 s).
    hosted = hosted_factory(ORDERFLOW_SWEEP_INTERVAL_SECONDS="1", ORDERFLOW_SWEEP_STALL_SECONDS="5")
    hosted.start_api_host()
    hosted.start_worker_hosts(3)
    hosted.system.stock_up(products=5, stock=120)
    shoppers = hosted.shoppers()  # cards that pay, decline, and ask for 3-D Secure
    placing = hosted.start_placing(shoppers, ORDERS, concurrency=8)
    warehouse = Warehouse(hosted.system)
    with hosted.lab.inside("api"):
        warehouse.start()

    def busy(host: str) -> bool:
        log = hosted.log_dir / f"{host}.log"
        return log.read_text(errors="replace").count("task finished") >= 6

    wait_until(lambda: busy("worker1") and busy("worker2"), 120)
    redriven_before = hosted.logged(REDRIVEN)
    hosted.lab.cut("worker1")  # back in 30 s
    hosted.lab.cut("worker2")  # never back
    cut_at = time.monotonic()
    time.sleep(CUT_SECONDS)
    hosted.lab.heal("worker1")
    placing.join(timeout=300)  # type: ignore[attr-defined]
    assert not placing.is_alive()  # type: ignore[attr-defined]
    warehouse.stop()
    wait_for_rest(hosted.database, 240)
    wait_until(lambda: warehouse.labels_pending() == 0, 180)
    settled = time.monotonic() - cut_at

    accepted = set(shoppers.accepted.values())
    kept = assert_promises_kept(hosted.database, hosted.system.initial_stock, accepted)
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(kept.items()))
    stand_ins = hosted.stand_ins
    assert_no_double_effects_at_providers(hosted.database, stand_ins.stripe, stand_ins.sendgrid)
    assert warehouse.shipped, "no order was shipped"
    labels = {
        shipment: stand_ins.shippo.labels_for(shipment) for shipment in warehouse.shipped.values()
    }
    assert set(labels.values()) == {1}, {k: n for k, n in labels.items() if n != 1}
    audit = hosted.audit_from("api")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "no violations" in audit.stdout
    redriven = hosted.logged(REDRIVEN) - redriven_before
    assert redriven > 0, "the sweeper re-drove nothing: were the cut hosts idle?"
    print(
        f"\nworker hosts cut: worker1 for {CUT_SECONDS:.0f} s, worker2 for good; "
        f"{len(accepted)} orders accepted, at rest {settled:.0f} s after the cut ({statuses}; "
        "pending ones wait for their customer's 3-D Secure); "
        f"{len(labels)} shipped, one label each; "
        f"sweeps that re-drove orders: {redriven}; audit: {audit.stdout.strip()}"
    )
