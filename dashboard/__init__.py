"""geokd dashboard package."""
