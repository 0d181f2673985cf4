"""The errors a user can cause. Entry points turn each into one `error: ...` line and exit 2."""


class UsageError(ValueError):
    """A user-supplied value is invalid; the message names the argument, the value and what is valid."""

    def __init__(self, argument, value, valid=None):
        self.argument, self.value = argument, value
        message = f"invalid {argument}: {value!r}"
        if valid:
            message += f" (expected {valid})"
        super().__init__(message)


class DataError(ValueError):
    """A data file exists but is not what it claims to be, or a dataset cannot be found."""


class DivergenceError(RuntimeError):
    """Training stopped on a non-finite loss; the best epoch so far was still evaluated and exported."""


USER_ERRORS = (UsageError, DataError, DivergenceError)
