"""Background work: RQ queues, the delivery job and the scheduler loop."""
