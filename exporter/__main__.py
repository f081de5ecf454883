"""`python -m exporter` runs the same command line as `podero-exporter`."""

from exporter.cli import main

raise SystemExit(main())
