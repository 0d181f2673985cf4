"""The errors a user can cause. Entry points turn each into one `error: ...` line and exit 2."""


class UsageError(ValueError):
    """A user-supplied value is invalid; the message names the argument, the value and what is valid."""

    def __init__(self, argument, value, valid=None):
        self.argument, self.value, self.valid = argument, value, valid
        message = f"invalid {argument}: {value!r}"
        if valid:
            message += f" (expected {valid})"
        super().__init__(message)


def check_integer(argument, value, low, high=None, expected=None):
    """`value` as an int if it is a whole number (numpy's too; not a bool, which Python counts
    as 1) in low..high, else a UsageError naming it: one check for counts, sizes and seeds."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low \
            or (high is not None and value > high):
        raise UsageError(argument, value, expected or (
            f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"))
    return int(value)


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
