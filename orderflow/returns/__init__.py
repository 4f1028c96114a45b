"""Returns of shipped units: their tables, their state machine and their statements. The
use cases (ask, approve, reject, receive) are ``fulfilment.returning``: receiving moves stock
and money, which are the pipeline's."""
