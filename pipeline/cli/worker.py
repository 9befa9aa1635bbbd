"""`bounceguard worker`: create the topics, then run the faust worker until stopped."""

from __future__ import annotations

import argparse
import logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the worker's options (everything else comes from BOUNCEGUARD_* variables)."""
    parser.add_argument(
        "--loglevel", default="info", choices=["crit", "error", "warn", "info", "debug"]
    )
    parser.add_argument(
        "--loop",
        default="uvloop",
        choices=["uvloop", "aio"],
        help="event loop: uvloop (default; faster asyncio scheduling) or the stdlib's",
    )


def run(args: argparse.Namespace) -> int:
    """Run the worker in the foreground; return its exit code when it stops."""
    import mode.loop

    # Before faust creates anything: the loop policy must be set before the first loop exists.
    mode.loop.use(args.loop)

    import faust

    from pipeline import web
    from pipeline.cli.process import tune_gc
    from pipeline.config import Settings
    from pipeline.stream import logfilters
    from pipeline.stream.app import create_app
    from pipeline.stream.topics import ensure_topics

    settings = Settings.from_env()
    ensure_topics(settings)
    runtime = create_app(settings)
    web.attach(runtime, settings)
    filters = logfilters.attach(runtime.app)
    tune_gc()

    class Worker(faust.Worker):
        """faust's worker, with our log filters on the handlers it sets up."""

        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            logfilters.install(logger.handlers, filters)

    Worker(runtime.app, loglevel=args.loglevel).execute_from_commandline()
    return 0
