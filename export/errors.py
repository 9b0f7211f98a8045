"""The one error class of export: what a user can fix, in one line."""


class ExportError(RuntimeError):
    """Export cannot go on; the message is one line for the user."""
