"""geokd_core: geometry-aware representation-alignment losses, metrics and the distillation engine.

This package never imports api, worker or dashboard (a test enforces it).
"""

__version__ = "0.1.0"
