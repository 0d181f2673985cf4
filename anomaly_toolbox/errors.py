"""One exception for every mistake a user can make on the command line or in a config."""


class UsageError(ValueError):
    """A user-supplied value is invalid; the message names the argument, the value and what is valid."""

    def __init__(self, argument, value, valid=None):
        self.argument, self.value = argument, value
        message = f"invalid {argument}: {value!r}"
        if valid:
            message += f" (expected {valid})"
        super().__init__(message)
