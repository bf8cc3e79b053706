"""What the trainer reads: the canonical event file, dataset adapters, the catalog, and the event archive (a window
of days, de-duplicated, consent applied)."""
