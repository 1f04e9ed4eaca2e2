"""The one error type for user mistakes (bad config, missing file, malformed record, bad checkpoint).

Its message names the field, file, record or tensor at fault; the CLI prints it in one line and exits 2.
"""


class CwmError(ValueError):
    """A user-facing mistake, described in one line."""
