"""Errors with messages meant for users (the service stores ``str(exc)`` as the job's error)."""


class GeokdError(Exception):
    """Base class: something about the job (not a bug in geokd) prevents it from running."""


class SpecError(GeokdError):
    """The spec is valid JSON but cannot be run (missing path, layer out of range, ...)."""


class DataError(GeokdError):
    """The data could not be read or does not have the expected columns/labels."""


class ModelError(GeokdError):
    """A model could not be loaded or does not fit the task (wrong head, missing files)."""
