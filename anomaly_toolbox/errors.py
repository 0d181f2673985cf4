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


class DiskFullError(RuntimeError):
    """A write failed for lack of space (ENOSPC, EFBIG, EDQUOT): the user's to fix. The message
    names the file or folder; what was there before is intact, so the same command resumes."""

    def __init__(self, path, reason):
        self.path = path
        super().__init__(f"disk full writing {path} ({reason}); free space and run the same "
                         f"command again")


USER_ERRORS = (UsageError, DataError, DivergenceError, DiskFullError)
