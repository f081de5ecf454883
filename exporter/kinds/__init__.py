"""Device kinds: one module per kind, their registry, and the table of every metric family."""
