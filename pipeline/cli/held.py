"""`bounceguard held [--domain D] [--release | --discard]`: the provider-outage guard's held
suppressions (issue 12). Without an action: list them as JSON (per provider group: count,
totals, and each held address with its trigger event and rules; `--counts` leaves the
addresses out). `--release` settles `--domain`'s group now: a held suppression whose address
received a delivery since is discarded, the rest are produced to `suppression.events` (acks
awaited), then confirmed; `--discard` discards them all (the operator judged the bounces
false). Re-running after a failure re-emits the same events (same ids), never new ones."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli.replay import add_engine_arguments, with_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register held's options."""
    add_engine_arguments(parser)
    parser.add_argument("--domain", help="a receiving domain or provider group (gmail.com)")
    parser.add_argument("--counts", action="store_true", help="list counts, not addresses")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--release", action="store_true", help="release --domain's group now")
    action.add_argument("--discard", action="store_true", help="discard --domain's group")


def run(args: argparse.Namespace) -> int:
    """List or settle; return 0, 2 for a bad --domain or --release/--discard without one, 1
    when Redis or Kafka is unreachable."""
    import orjson

    from pipeline.core.errors import Transient
    from pipeline.state import held

    mode = "release" if args.release else "discard" if args.discard else None
    if mode and not args.domain:
        print("held: --release and --discard need --domain", file=sys.stderr)
        return 2
    try:
        if mode is None:
            groups = with_store(args, lambda store: held.held(store, args.domain))
            out = [g.to_json(addresses=not args.counts) for g in groups]
            print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
            return 0
        return _settle(args, mode)
    except Transient as exc:
        print(f"held: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"held: {exc}", file=sys.stderr)
        return 2


def _settle(args: argparse.Namespace, mode: str) -> int:
    import orjson

    from pipeline.cli.sweep import produce
    from pipeline.config import Settings
    from pipeline.state import held

    settled = with_store(args, lambda store: held.settle(store, args.domain, mode))
    for s in settled.suppressions:
        print(orjson.dumps(s.to_json()).decode(), flush=True)
    if settled.suppressions or settled.acks:
        try:
            produce(Settings.from_env(), settled.suppressions)
        except Exception as exc:  # kafka-python's errors share no base class worth naming
            print(f"held: cannot deliver to Kafka ({type(exc).__name__}); re-run: the same "
                  "events are released again", file=sys.stderr)  # fmt: skip
            return 1
        with_store(args, lambda store: store.mark_emitted(settled.suppressions, acks=settled.acks))
    summary = {"group": settled.group, "released": settled.released,
               "discarded": settled.discarded, "emitted": len(settled.suppressions)}  # fmt: skip
    print(orjson.dumps(summary).decode(), file=sys.stderr)
    return 0
