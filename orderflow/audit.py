"""Checks the promises of DESIGN.md over the whole database (``orderflow audit``).

Each check is one query that returns the rows breaking a promise; an empty result is a
pass. They read only, and can run against a live system."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from sqlalchemy import text
from sqlalchemy.orm import Session

from orderflow.orders.state import TRANSITIONS
from orderflow.returns.state import is_allowed as is_return_move
from orderflow.shipments.repository import ShipmentRepository
from orderflow.shipments.state import UNDER_WAY, derive_shipping_status
from orderflow.shipments.state import is_allowed as is_shipment_move
from orderflow.statuses import OrderStatus, ReturnStatus, ShipmentStatus


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.detail}"


_UNDER_WAY = ", ".join(f"'{status.value}'" for status in sorted(UNDER_WAY))

_CHECKS: dict[str, str] = {
    "stock_non_negative": "SELECT id, 'stock ' || stock FROM products WHERE stock < 0",
    # The stock ledger (migrations 0003 and 0014, written by triggers): in every transaction,
    # what the pipeline took from or gave back to the shelf is exactly what the product's
    # reservations took or gave back plus what returns put back; only an admin's change
    # moves the shelf on its own.
    "stock_conserved": """
        SELECT product_id, 'transaction ' || txid || ' moved the stock by ' || moved
               || ' and its reservations by ' || held
        FROM (SELECT product_id, txid,
                     coalesce(sum(delta) FILTER (WHERE side = 'shelf' AND kind = 'move'), 0)
                       AS moved,
                     coalesce(sum(delta) FILTER (WHERE side IN ('reservation', 'return')), 0)
                       AS held
              FROM stock_ledger GROUP BY product_id, txid) AS moves
        WHERE moved <> held""",
    "stock_matches_ledger": """
        SELECT p.id, 'stock ' || p.stock || ' but the ledger adds up to '
               || coalesce(sum(l.delta), 0)
        FROM products p LEFT JOIN stock_ledger l ON l.product_id = p.id AND l.side = 'shelf'
        GROUP BY p.id HAVING p.stock <> coalesce(sum(l.delta), 0)""",
    "reservation_matches_lines": """
        SELECT r.order_id, 'reserved ' || r.quantity || ' of ' || r.product_id
               || ', ordered ' || coalesce(l.quantity, 0)
        FROM stock_reservations r LEFT JOIN order_lines l
          ON l.order_id = r.order_id AND l.product_id = r.product_id
        WHERE (l.id IS NULL AND r.released_at IS NULL) OR l.quantity <> r.quantity""",
    "reservation_all_or_none": """
        SELECT l.order_id, count(r.id) || ' of ' || count(l.id) || ' lines reserved'
        FROM order_lines l LEFT JOIN stock_reservations r
          ON r.order_id = l.order_id AND r.product_id = l.product_id
        GROUP BY l.order_id HAVING count(r.id) > 0 AND count(r.id) <> count(l.id)""",
    # Unique constraints enforce these; the audit still says so if one was ever dropped.
    "one_effect_per_kind": """
        SELECT order_id, count(*) || ' ' || what FROM (
            SELECT order_id, kind || ' payments' AS what FROM payments
            UNION ALL SELECT order_id, kind || ' e-mails' FROM emails
            UNION ALL SELECT order_id, kind || ' texts' FROM sms_messages
            UNION ALL SELECT order_id, 'invoices' FROM invoices) AS effects
        GROUP BY order_id, what HAVING count(*) > 1""",
    "paid_order_has_one_capture": """
        SELECT o.id, 'status ' || o.status || ', charge ' || coalesce(p.status, 'none')
        FROM orders o LEFT JOIN payments p ON p.order_id = o.id AND p.kind = 'charge'
        WHERE o.status IN ('confirmed', 'shipped', 'delivered')
          AND (p.status IS DISTINCT FROM 'succeeded'
               OR p.amount <> o.total_amount + o.reduced_amount OR p.currency <> o.currency)""",
    # Every paid order's capture equals its total in its currency, plus what changes took off
    # its lines after it was paid (``reduced_amount``, PATCH /orders/{id}). The one exception is an
    # order the provider captured a wrong amount for: it failed with that reason and its
    # capture goes back in full (``ended_order_refunded`` checks that it did).
    "captured_money_adds_up": """
        SELECT o.id, 'payment ' || o.payment_status || ', captured '
               || coalesce(p.amount || ' ' || p.currency, 'nothing') || ' for a total of '
               || o.total_amount || ' ' || o.currency
        FROM orders o LEFT JOIN payments p
          ON p.order_id = o.id AND p.kind = 'charge' AND p.status = 'succeeded'
        WHERE (o.payment_status = 'paid' OR p.id IS NOT NULL)
          AND (p.id IS NULL OR p.amount <> o.total_amount + o.reduced_amount
               OR p.currency <> o.currency)
          AND NOT (o.failure_reason IS NOT DISTINCT FROM 'payment_amount_mismatch'
                   AND o.status IN ('failed', 'cancelled'))""",
    # Refunds (pending + succeeded) within the capture: a CHECK on orders enforces it; the
    # counters it checks must be the sums of the refund rows, and the capture the charge's.
    "refund_within_capture": """
        SELECT o.id, 'refunded ' || o.refunded_amount || ' + pending '
               || o.refund_pending_amount || ' of ' || o.captured_amount || ' captured'
        FROM orders o
        WHERE o.refunded_amount + o.refund_pending_amount > o.captured_amount""",
    "refund_counters_match_refunds": """
        SELECT o.id, 'counters ' || o.refunded_amount || '/' || o.refund_pending_amount
               || ', refunds ' || coalesce(r.done, 0) || '/' || coalesce(r.pending, 0)
        FROM orders o LEFT JOIN (
            SELECT order_id, sum(amount) FILTER (WHERE status = 'succeeded') AS done,
                   sum(amount) FILTER (WHERE status = 'pending') AS pending
            FROM refunds GROUP BY order_id) r ON r.order_id = o.id
        WHERE o.refunded_amount <> coalesce(r.done, 0)
           OR o.refund_pending_amount <> coalesce(r.pending, 0)""",
    # The same from the refund rows themselves: what they give back (pending + succeeded)
    # never exceeds the charge the provider captured.
    "refunds_within_charge": """
        SELECT r.order_id, 'refunds of ' || sum(r.amount) || ' ' || min(r.currency)
               || ' for a capture of ' || coalesce(max(c.amount), 0)
        FROM refunds r LEFT JOIN payments c
          ON c.order_id = r.order_id AND c.kind = 'charge' AND c.status = 'succeeded'
        WHERE r.status IN ('pending', 'succeeded')
        GROUP BY r.order_id HAVING sum(r.amount) > coalesce(max(c.amount), 0)""",
    # Credit notes (fulfilment/crediting.py): numbered without gaps per year, one per refund,
    # each of its refund's order, amount and currency and issued for a refund that succeeded
    # (one that later failed keeps its document: it stays listed here as a failed refund).
    "credit_note_numbers_gapless": """
        SELECT year::text, 'numbers ' || min(sequence) || '..' || max(sequence)
               || ' but ' || count(*) || ' credit notes'
        FROM credit_notes GROUP BY year
        HAVING min(sequence) <> 1 OR max(sequence) <> count(*)""",
    "credit_note_matches_refund": """
        SELECT n.number, 'credits ' || n.amount || ' ' || n.currency || ' of order '
               || n.order_id || ' for refund ' || r.id || ' (' || r.status || ') of '
               || r.amount || ' ' || r.currency || ' of order ' || r.order_id
        FROM credit_notes n JOIN refunds r ON r.id = n.refund_id
        WHERE n.amount <> r.amount OR n.currency <> r.currency OR n.order_id <> r.order_id
           OR r.status <> 'succeeded'
           OR n.number <> 'CN-' || n.year || '-' || lpad(n.sequence::text, 6, '0')""",
    "credit_note_for_every_refund_after_invoice": """
        SELECT r.order_id, 'refund ' || r.id || ' of ' || r.amount || ' ' || r.currency
               || ' succeeded on invoiced order without a credit note'
        FROM refunds r JOIN invoices i ON i.order_id = r.order_id
        LEFT JOIN credit_notes n ON n.refund_id = r.id
        WHERE r.status = 'succeeded' AND n.id IS NULL""",
    "captured_amount_is_the_charge": """
        SELECT o.id, 'captured_amount ' || o.captured_amount || ', charge '
               || coalesce(c.amount::text, 'none')
        FROM orders o LEFT JOIN payments c
          ON c.order_id = o.id AND c.kind = 'charge' AND c.status = 'succeeded'
        WHERE o.captured_amount <> coalesce(c.amount, 0)""",
    "order_total_is_sum_of_lines": """
        SELECT o.id, 'total ' || o.total_amount || ', lines ' || coalesce(sum(l.subtotal_amount), 0)
        FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id
        GROUP BY o.id HAVING o.total_amount <> coalesce(sum(l.subtotal_amount), 0)""",
    "confirmed_order_holds_its_stock": """
        SELECT o.id, 'line ' || l.product_id || ' has no live reservation'
        FROM orders o JOIN order_lines l ON l.order_id = o.id
        LEFT JOIN stock_reservations r
          ON r.order_id = o.id AND r.product_id = l.product_id AND r.released_at IS NULL
        WHERE o.status IN ('confirmed', 'shipped', 'delivered')
          AND (r.id IS NULL OR r.quantity <> l.quantity)""",
    "ended_order_released_its_stock": """
        SELECT o.id, 'still holds ' || r.quantity || ' of ' || r.product_id
        FROM orders o JOIN stock_reservations r ON r.order_id = o.id
        WHERE o.status IN ('failed', 'cancelled') AND r.released_at IS NULL""",
    # Every confirmed, shipped or delivered order has its invoice, and only a paid order has
    # one (an order invoiced, then cancelled and refunded keeps it: numbers are gapless).
    "one_invoice_per_paid_order": """
        SELECT o.id, 'status ' || o.status || ', invoice ' || coalesce(i.number, 'missing')
               || ', charge ' || coalesce(c.status, 'none')
        FROM orders o LEFT JOIN invoices i ON i.order_id = o.id
        LEFT JOIN payments c ON c.order_id = o.id AND c.kind = 'charge'
        WHERE (o.status IN ('confirmed', 'shipped', 'delivered') AND i.id IS NULL)
           OR (i.id IS NOT NULL AND c.status IS DISTINCT FROM 'succeeded')
           OR o.invoice_number IS DISTINCT FROM i.number""",
    "invoice_numbers_gapless": """
        SELECT year::text, 'numbers ' || min(sequence) || '..' || max(sequence)
               || ' but ' || count(*) || ' invoices'
        FROM invoices GROUP BY year HAVING min(sequence) <> 1 OR max(sequence) <> count(*)""",
    "confirmation_email_sent": """
        SELECT o.id, 'no confirmation e-mail sent'
        FROM orders o JOIN invoices i ON i.order_id = o.id
        LEFT JOIN emails e ON e.order_id = o.id AND e.kind = 'confirmation' AND e.status = 'sent'
        WHERE e.id IS NULL AND o.status IN ('confirmed', 'shipped', 'delivered')""",
    "status_email_sent": """
        SELECT o.id, 'no ' || o.status || ' e-mail sent'
        FROM orders o
        LEFT JOIN emails e ON e.order_id = o.id AND e.kind = o.status AND e.status = 'sent'
        WHERE o.status IN ('shipped', 'delivered', 'cancelled', 'failed') AND e.id IS NULL""",
    # Promise 9: per order line, the units in shipments that are not cancelled never exceed
    # the units ordered (``fulfilment.packing``, under the order's row lock).
    "shipped_within_ordered": """
        SELECT l.order_id, 'line ' || l.product_id || ': ' || sum(sl.quantity)
               || ' in shipments, ' || l.quantity || ' ordered'
        FROM order_lines l JOIN shipment_lines sl ON sl.order_line_id = l.id
        JOIN shipments s ON s.id = sl.shipment_id AND s.status <> 'cancelled'
        GROUP BY l.id, l.order_id, l.product_id, l.quantity HAVING sum(sl.quantity) > l.quantity""",
    "shipment_lines_of_their_order": """
        SELECT s.id, 'line ' || sl.order_line_id || ' belongs to order ' || l.order_id
        FROM shipments s JOIN shipment_lines sl ON sl.shipment_id = s.id
        JOIN order_lines l ON l.id = sl.order_line_id WHERE l.order_id <> s.order_id""",
    "one_label_per_shipment": """
        SELECT shipment_id, count(*) || ' labels' FROM shipment_labels
        GROUP BY shipment_id HAVING count(*) > 1""",
    # No backward move: in the order they were applied (ids grow under the shipment's
    # lock), a shipment's applied tracking updates are never dated before the one applied
    # just before (``shipments.state.moves_to``). ``shipment_moves_forward`` reads the same
    # history in date order, which a move backwards that a later update covered would pass.
    "shipment_updates_applied_in_date_order": """
        SELECT shipment_id, status || ' dated ' || occurred_at || ' applied after '
               || previous_status || ' dated ' || previous_at
        FROM (SELECT shipment_id, status, occurred_at,
                     lag(status) OVER applied_order AS previous_status,
                     lag(occurred_at) OVER applied_order AS previous_at
              FROM shipment_events WHERE applied
              WINDOW applied_order AS (PARTITION BY shipment_id ORDER BY id)) AS moves
        WHERE occurred_at < previous_at""",
    "ended_order_refunded": """
        SELECT o.id, o.status || ' but ' || (o.captured_amount - o.refunded_amount)
               || ' of its capture was not refunded'
        FROM orders o
        WHERE o.status IN ('failed', 'cancelled') AND o.refunded_amount < o.captured_amount""",
    # Promise 9 for returns (``returns.service``, under the order's row lock): per order
    # line, the units returns hold (asked for until received, received from then on;
    # rejected returns none) never exceed the units of its shipments under way.
    "returned_within_shipped": f"""
        SELECT l.order_id, 'line ' || l.product_id || ': ' || ret.units || ' returned, '
               || coalesce(sh.units, 0) || ' shipped'
        FROM order_lines l
        JOIN (SELECT rl.order_line_id,
                     sum(CASE WHEN r.status IN ('received', 'refunded')
                              THEN coalesce(rl.received_quantity, 0)
                              ELSE rl.quantity END) AS units
              FROM return_lines rl JOIN returns r ON r.id = rl.return_id
              WHERE r.status <> 'rejected' GROUP BY rl.order_line_id) ret
          ON ret.order_line_id = l.id
        LEFT JOIN (SELECT sl.order_line_id, sum(sl.quantity) AS units
                   FROM shipment_lines sl JOIN shipments s ON s.id = sl.shipment_id
                   WHERE s.status IN ({_UNDER_WAY}) GROUP BY sl.order_line_id) sh
          ON sh.order_line_id = l.id
        WHERE ret.units > coalesce(sh.units, 0)""",
    "return_lines_of_their_order": """
        SELECT r.id, 'line ' || rl.order_line_id || ' belongs to order ' || l.order_id
        FROM returns r JOIN return_lines rl ON rl.return_id = r.id
        JOIN order_lines l ON l.id = rl.order_line_id WHERE l.order_id <> r.order_id""",
    # Each return line received to be restocked went back on the shelf once: stamped, with
    # exactly one entry of its units on the ledger's ``return`` side (the trigger of
    # migration 0014); no such entry without its line.
    "restock_once": """
        SELECT rl.return_id, 'line ' || rl.product_id || ': ' || coalesce(rl.received_quantity, 0)
               || ' to restock, ' || CASE WHEN rl.restocked_at IS NULL THEN 'not restocked'
                                          ELSE 'restocked' END
               || ', ' || count(g.id) || ' ledger entries of ' || coalesce(sum(g.delta), 0)
        FROM return_lines rl JOIN returns r ON r.id = rl.return_id
        LEFT JOIN stock_ledger g ON g.side = 'return' AND g.return_line_id = rl.id
        WHERE rl.restocked_at IS NOT NULL OR g.id IS NOT NULL
           OR (r.status IN ('received', 'refunded') AND rl.restock AND rl.received_quantity > 0)
        GROUP BY rl.id, rl.return_id, rl.product_id, rl.received_quantity, rl.restocked_at
        HAVING rl.restocked_at IS NULL OR count(g.id) <> 1
            OR sum(g.delta) <> rl.received_quantity OR bool_or(g.product_id <> rl.product_id)
        UNION ALL
        SELECT coalesce(g.order_id, g.product_id),
               'ledger entry ' || g.id || ' restocks ' || g.delta || ' for no return line'
        FROM stock_ledger g LEFT JOIN return_lines rl ON rl.id = g.return_line_id
        WHERE g.side = 'return' AND rl.id IS NULL""",
    # The refund a receipt asked for is the return's, of its order, for what it says.
    "return_refund_matches": """
        SELECT r.id, 'refund_amount ' || r.refund_amount || ', refund '
               || coalesce(f.id || ' of ' || f.amount || ' for ' || f.order_id, 'none')
        FROM returns r LEFT JOIN refunds f ON f.id = r.refund_id
        WHERE (r.refund_id IS NULL AND r.refund_amount <> 0)
           OR (r.refund_id IS NOT NULL
               AND (f.amount <> r.refund_amount OR f.order_id <> r.order_id))""",
    # --- promise 8 (issue 15) ---
    # Every timeline entry that is a business fact (orderflow/events/types.py) and younger
    # than the shortest retention has its event, under the same id.
    "fact_has_event": """
        SELECT t.order_id, t.type || ' ' || t.id || ' has no event in the feed'
        FROM order_events t LEFT JOIN events e ON e.id = t.id
        WHERE e.id IS NULL AND t.created_at > now() - interval '29 days'
          AND (t.type IN ('order_placed', 'payment_succeeded', 'payment_failed',
                          'invoice_generated', 'payment_refunded', 'refund_failed',
                          'order_updated',
                          'return_requested', 'return_approved', 'return_rejected',
                          'return_received', 'return_refunded')
               OR (t.type = 'status_changed' AND t.data->>'to' IN
                   ('confirmed', 'failed', 'cancelled', 'shipped', 'delivered')))""",
    "event_sequence_gapless": """
        SELECT s.subject_type || ' ' || s.subject_id,
               count(e.id) || ' events kept, sequences ' || min(e.sequence) || '..'
               || max(e.sequence) || ', counter ' || s.last_sequence
        FROM event_subjects s JOIN events e
          ON e.subject_type = s.subject_type AND e.subject_id = s.subject_id
        GROUP BY s.subject_type, s.subject_id, s.last_sequence
        HAVING count(e.id) <> max(e.sequence) - min(e.sequence) + 1
            OR max(e.sequence) <> s.last_sequence""",
    # An endpoint enabled now and unchanged since before an event of a type it subscribes to
    # was enabled then with those types: the event must have its delivery.
    "subscribed_event_has_delivery": """
        SELECT w.id, 'no delivery of ' || e.type || ' ' || e.id
        FROM webhook_endpoints w JOIN events e
          ON e.created_at > w.updated_at AND e.type LIKE ANY (w.type_likes)
        WHERE w.status = 'enabled' AND NOT EXISTS (
            SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = w.id AND d.event_id = e.id)""",
    "delivery_succeeded_once": """
        SELECT endpoint_id, event_id || ' succeeded ' || count(*) || ' times unreplayed'
        FROM webhook_deliveries WHERE status = 'succeeded' AND replay = 0
        GROUP BY endpoint_id, event_id HAVING count(*) > 1""",
}


def _transition_violations(session: Session) -> list[Violation]:
    """Every order's status history is a walk through the state machine ending where the
    order is now."""
    rows = session.execute(
        text(
            """SELECT o.id, o.status, array_remove(array_agg(e.data->>'to' ORDER BY e.created_at,
                      e.id), NULL)
               FROM orders o LEFT JOIN order_events e
                 ON e.order_id = o.id AND e.type = 'status_changed'
               GROUP BY o.id, o.status"""
        )
    ).all()
    allowed = {(source.value, target.value) for source, target in TRANSITIONS}
    found = []
    for order_id, status, history in rows:
        steps: list[str] = list(history or [])  # type: ignore[call-overload]
        walk = [OrderStatus.PENDING.value, *steps]
        bad = [(a, b) for a, b in pairwise(walk) if (a, b) not in allowed]
        if bad or walk[-1] != status:
            found.append(
                Violation("only_allowed_transitions", str(order_id), f"{walk} -> {status}")
            )
    return found


def _shipment_violations(session: Session) -> list[Violation]:
    """Every shipment's applied tracking updates, in date order, are moves its state machine
    allows, none dated before the one it follows, ending where the shipment is now (or the
    shipment was cancelled); and every order with shipments shows the ``shipping_status``
    its shipments' quantities give."""
    found = []
    rows = session.execute(
        text(
            """SELECT s.id, s.status, s.created_at, array_remove(array_agg(e.status
                      ORDER BY e.occurred_at, e.id), NULL)
               FROM shipments s LEFT JOIN shipment_events e
                 ON e.shipment_id = s.id AND e.applied
               GROUP BY s.id, s.status"""
        )
    ).all()
    for shipment_id, status, _, history in rows:
        steps: list[str] = list(history or [])  # type: ignore[call-overload]
        bad = [
            (a, b)
            for a, b in pairwise(steps)
            if a != b and not is_shipment_move(ShipmentStatus(a), ShipmentStatus(b))
        ]
        ends = steps[-1] if steps else None
        if bad or (ends is not None and status not in (ends, ShipmentStatus.CANCELLED.value)):
            found.append(
                Violation("shipment_moves_forward", str(shipment_id), f"{steps} -> {status}")
            )
    orders = session.execute(
        text(
            """SELECT o.id, o.status, o.shipping_status FROM orders o
               WHERE EXISTS (SELECT 1 FROM shipments s WHERE s.order_id = o.id)"""
        )
    ).all()
    for order_id, order_status, shipping_status in orders:
        progress = ShipmentRepository(session).progress(str(order_id))
        derived = derive_shipping_status(OrderStatus(str(order_status)), progress)
        if derived.value != shipping_status:
            found.append(
                Violation(
                    "shipping_status_matches_shipments",
                    str(order_id),
                    f"shows {shipping_status}, its shipments give {derived.value}",
                )
            )
    return found


def _return_violations(session: Session) -> list[Violation]:
    """Every return's timeline entries walk its state machine from ``requested`` to where
    the return is now."""
    rows = session.execute(
        text(
            """SELECT r.id, r.status, array_remove(array_agg(e.data->>'to'
                      ORDER BY e.created_at, e.id), NULL)
               FROM returns r LEFT JOIN order_events e
                 ON e.order_id = r.order_id AND e.data->>'return_id' = r.id
                AND e.type IN ('return_approved', 'return_rejected', 'return_received',
                               'return_refunded')
               GROUP BY r.id, r.status"""
        )
    ).all()
    found = []
    for return_id, status, history in rows:
        walk = [ReturnStatus.REQUESTED.value, *list(history or [])]  # type: ignore[call-overload]
        bad = [
            (a, b)
            for a, b in pairwise(walk)
            if not is_return_move(ReturnStatus(a), ReturnStatus(b))
        ]
        if bad or walk[-1] != status:
            found.append(Violation("return_moves_allowed", str(return_id), f"{walk} -> {status}"))
    return found


def audit(session: Session) -> list[Violation]:
    violations = []
    for name, sql in _CHECKS.items():
        for subject, detail in session.execute(text(sql)).all():
            violations.append(Violation(name, str(subject), str(detail)))
    return (
        violations
        + _transition_violations(session)
        + _shipment_violations(session)
        + _return_violations(session)
    )


CHECK_NAMES: list[str] = [
    *_CHECKS,
    "only_allowed_transitions",
    "shipment_moves_forward",
    "shipping_status_matches_shipments",
    "return_moves_allowed",
]
