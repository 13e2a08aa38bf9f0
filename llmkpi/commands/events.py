"""`llmkpi events status|flush`: the product-event outbox, and its delivery to Mixpanel."""

from __future__ import annotations

import argparse
import sys

from llmkpi import settings as settings_mod

HELP = "the product-event outbox: status, or flush to Mixpanel"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("status", "flush"))
    parser.add_argument("--outbox", help="outbox file (default LLMKPI_OUTBOX)")
    parser.add_argument("--api-host", help="Mixpanel API base URL (default"
                        " LLMKPI_MIXPANEL_API_HOST)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="flush: give up after seconds")


def run(args: argparse.Namespace) -> int:
    from exporters.mixpanel import MixpanelSender
    from exporters.outbox import Outbox
    from llmkpi.serve import mixpanel_target

    events = settings_mod.EventsSettings.from_args(args)
    if events.outbox is None:
        raise ValueError("no outbox: pass --outbox FILE or set LLMKPI_OUTBOX")
    if not events.outbox.exists():
        raise FileNotFoundError(f"{events.outbox}: no such outbox")
    outbox = Outbox(events.outbox, max_events=events.max_events)
    if args.action == "flush":
        if not events.token:
            raise ValueError("flush needs LLMKPI_MIXPANEL_TOKEN (and credentials)")
        sender = MixpanelSender(outbox, mixpanel_target(events))
        if not sender.drain(args.timeout):
            print(f"not drained after {args.timeout:g}s: {sender.last_error}", file=sys.stderr)
    stats = outbox.stats()
    print(f"{events.outbox}: pending {stats.pending}, quarantined {stats.quarantined},"
          f" sent {stats.sent}, dropped {stats.dropped}")
    for event_id, name, reason in outbox.quarantined()[:20]:
        print(f"  quarantined {name} {event_id}: {reason}")
    return 0 if args.action == "status" or stats.pending == 0 else 1
