"""Grid case-routing engine: domain core (pure, no I/O)."""
