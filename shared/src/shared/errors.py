"""The one exception type for expected failures.

A learner who types a wrong option, points at a missing file or loads a checkpoint from another
model should read one line that says what is wrong and what to do, not a traceback. Code raises
`UsageError` (or a subclass) for those cases; the command dispatcher prints `error: <message>` and
exits with status 2. Anything else is a bug and keeps its traceback.
"""


class UsageError(Exception):
    """An expected failure whose message tells the user how to fix it (exit code 2)."""


class ConfigError(UsageError):
    """A bad option: unknown key, wrong type, or a value outside what the field accepts."""


class DatasetError(UsageError):
    """A dataset that cannot be found, verified or downloaded."""


class CheckpointError(UsageError):
    """A checkpoint that is missing, truncated, corrupt, or does not match the model."""
