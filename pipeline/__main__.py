"""`python -m pipeline` runs the bounceguard CLI."""

from pipeline.cli import main

raise SystemExit(main())
