"""A channel that cannot drop repeats, for the process tests.

Registering a class in the test process does not reach a `publisher worker` subprocess, so the
tests install this one the way a third party would: a `publisher.channels` entry point in a
distribution's metadata on the subprocess's path (see plugin_path in tests/test_processes.py).
"""

from __future__ import annotations

from channels.webhook import Webhook


class PlainWebhook(Webhook):
    type = "plain-test"
    idempotent = False


ADAPTER = PlainWebhook
