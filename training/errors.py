"""The one error type the CLIs turn into a single line on stderr (exit code 2)."""


class UserError(Exception):
    """Bad input or an unusable environment; the message says what is wrong and what to do."""
