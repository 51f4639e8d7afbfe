"""geokd worker package."""
