"""`python -m exporter.sim` is `podero-simulator`."""

from exporter.sim.process import main

raise SystemExit(main())
