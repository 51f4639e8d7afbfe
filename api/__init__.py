"""geokd api package."""
