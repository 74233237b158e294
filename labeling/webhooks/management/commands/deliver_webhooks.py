"""Send queued webhook deliveries: ``python manage.py deliver_webhooks [--once]``.

The worker (``manage.py worker``) already runs this loop in a thread; run it on its own to
deliver without a training worker, or with ``--once`` to send what is due now and exit.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from labeling.webhooks.delivery import Deliverer, webhook_deliver_due


class Command(BaseCommand):
    help = "Send due webhook deliveries (with retries) until stopped, or once with --once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="send what is due now, then exit")
        parser.add_argument("--poll", type=float, default=2.0, help="seconds between rounds")
        parser.add_argument("--limit", type=int, default=20, help="deliveries per round")

    def handle(self, *args, **options) -> None:
        if options["once"]:
            total = {"delivered": 0, "retrying": 0, "failed": 0, "folded": 0}
            while True:
                done = webhook_deliver_due(limit=options["limit"])
                total["folded"] += done.folded
                for key in ("delivered", "retrying", "failed"):
                    total[key] += len(getattr(done, key))
                if done.sent < options["limit"]:
                    break
            self.stdout.write(
                "webhooks: {delivered} delivered, {retrying} to retry, {failed} failed "
                "({folded} labels batched)".format(**total)
            )
            return
        stopping = threading.Event()

        def stop(_signum, _frame) -> None:
            stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write("delivering webhooks (Ctrl-C to stop)")
        Deliverer(stopping, poll_seconds=options["poll"], limit=options["limit"]).run()
        self.stdout.write("stopped")
