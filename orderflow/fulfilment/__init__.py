"""The fulfilment pipeline's steps: reserve stock, charge, invoice, e-mail, refund; the webhook
handler; and the sweeper that re-drives whatever stalled. The database is the truth; the
broker is only a delivery path."""
