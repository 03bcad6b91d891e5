"""User-facing errors: each one renders as a single line that says what was expected and found.

Jobs catch :class:`DeepsparkError` at the entry point and print ``error: <message>``; anything else
is a bug and keeps its traceback.
"""


class DeepsparkError(Exception):
    """Base class for errors a user can act on (bad config, bad input, failed invariant)."""


class ConfigError(DeepsparkError):
    """A config file is malformed: unknown key, wrong type, missing key, bad override."""


class InputError(DeepsparkError):
    """An input dataset is missing, empty, corrupt, or does not match its declared schema."""


class ReconciliationError(DeepsparkError):
    """Row accounting failed: rows in != rows written clean + rows quarantined."""


class SetupError(DeepsparkError):
    """The runtime is missing something outside the project (Java, a secret, a package)."""


class DataCheckError(InputError):
    """A table broke an expectation or an anomaly check whose severity is ``fail``."""
