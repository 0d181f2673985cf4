"""Value rules for the hyperparameters in each model's DEFAULTS, declared beside them as RANGES
and checked once, by `config.resolve`, for every model. A rule applies to each element of a list."""

POSITIVE = ("a value > 0", lambda v: v > 0)
NON_NEGATIVE = ("a value >= 0", lambda v: v >= 0)
UNIT = ("a value in [0, 1]", lambda v: 0 <= v <= 1)
ADAM_BETA = ("a value in [0, 1)", lambda v: 0 <= v < 1)
ANY = ("any value of the default's type", lambda v: True)
# Sizes and counts: far above any useful value (the papers' widths are <= 1024, their searches
# <= 500 steps), low enough that a typo (extra zeros) is refused at once, not met as an
# out-of-memory traceback or a search running for weeks after the first epoch.
SIZE = ("a value in 1..8192", lambda v: 1 <= v <= 8192)
STEPS = ("a value in 0..100000", lambda v: 0 <= v <= 100_000)
# As train_seed and split_seed (run/spec.py's SEED_MAX): a seed past int64 was an OverflowError
# traceback when scoring began, after the first epoch had trained and run.json was written.
SEED = ("an integer in 0..4294967295", lambda v: 0 <= v <= 2**32 - 1)


def one_of(*choices):
    return (f"one of {', '.join(map(str, choices))}", lambda v: v in choices)


def violation(value, rule):
    """None if `value` obeys `rule`, else the text saying what was expected."""
    text, ok = rule
    return None if all(ok(v) for v in (value if isinstance(value, list) else [value])) else text
