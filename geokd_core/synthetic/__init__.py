"""The paper's synthetic experiment: how many eps-orthogonal teacher pairs each loss preserves.

``run_synthetic_job`` is what ``geokd_core.run.run_job`` calls for ``kind: synthetic``.
"""

from geokd_core.synthetic.runner import run_synthetic_job

__all__ = ["run_synthetic_job"]
