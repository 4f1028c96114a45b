"""orderflow: the order-fulfilment domain shared by the API, the tasks and the workers."""
