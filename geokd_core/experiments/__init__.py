"""Reproductions of the paper's experiments through the job service (plans, runs store, reports).

- ``glue``: BERT students on GLUE with every feature loss (``geokd reproduce glue``).
- ``instruct``: a causal-LM teacher distilled into a smaller decoder (``geokd reproduce instruct``).

Torch-free: the CLI (``api/reproduce.py``) builds the plans here and drives the service over HTTP.
"""
