"""What the trainer reads: the event archive (a window of days, de-duplicated, consent applied)."""
