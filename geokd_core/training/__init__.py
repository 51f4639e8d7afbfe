"""The pieces of the training engine (``geokd_core.train`` wires them together)."""
