"""The grid's flags parsed and checked before any cell runs (and before TensorFlow loads): the
benchmark's own flags, a campaign file's parts (campaign_file) and the speed report's lists."""


def parse_classes(text):
    from anomaly_toolbox.errors import UsageError

    try:
        if "-" in text:
            low, high = (int(t) for t in text.split("-"))
            return list(range(low, high + 1))
        return [int(t) for t in text.split(",")]
    except ValueError as e:
        raise UsageError("classes", text, "a range like 0-9 or a list like 1,3,5") from e


def parse_shard(text):
    from anomaly_toolbox.errors import UsageError

    try:
        index, count = (int(t) for t in text.split("/"))
        assert 0 <= index < count
    except (ValueError, AssertionError) as e:
        raise UsageError("shard", text, "i/n with 0 <= i < n") from e
    return index, count


def refuse_repeats(argument, text, values):
    """A value listed twice (--classes=1,1, --seeds=0,00, --models=egbad,egbad) made its cells
    twice: two workers trained each into one run folder at once, the second refused by the
    lock (a FAILED cell, exit 1), both writing one train.log; the speed report timed its rows
    twice."""
    from anomaly_toolbox.errors import UsageError

    repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if repeated is not None:
        raise UsageError(argument, text, f"each value once ({repeated} is listed twice)")


def refuse_repeated_flags(*names):
    """refuse_repeats for each named list flag of a tool, in its cli.main check (before
    TensorFlow loads, unless the tool's module imports it): speed_settings, step_profile,
    blocks_vs_keras and peer timed a repeated model or precision twice."""
    from absl import flags

    for name in names:
        values = flags.FLAGS[name].value or []
        refuse_repeats(name, ",".join(values), values)


def check_grid(classes, seeds, protocol, limit=None):
    """(classes, seeds) of the grid, every value checked before a cell runs: a class the
    datasets lack, an empty range (9-0), a bad seed, protocol or limit made each cell's run
    fail, the grid still exiting 0 (and a seed that is no integer was a traceback)."""
    from anomaly_toolbox import data
    from anomaly_toolbox.data.datasets import NUM_CLASSES
    from anomaly_toolbox.data.protocols import PROTOCOLS
    from anomaly_toolbox.errors import UsageError, check_integer
    from anomaly_toolbox.run.spec import SEED_MAX

    parsed = parse_classes(classes)
    if not parsed or any(not 0 <= k < NUM_CLASSES for k in parsed):
        raise UsageError("classes", classes, f"classes in 0..{NUM_CLASSES - 1}, like 0-9 or 1,3,5")
    checked = []
    for seed in seeds:
        try:
            checked.append(check_integer("seeds", int(seed), 0, SEED_MAX))
        except ValueError:  # not an integer, or out of range (UsageError)
            raise UsageError("seeds", ",".join(seeds), f"integers in 0..{SEED_MAX}") from None
    refuse_repeats("classes", classes, parsed)
    refuse_repeats("seeds", ",".join(seeds), checked)
    if protocol not in PROTOCOLS:
        raise UsageError("protocol", protocol, f"one of {', '.join(PROTOCOLS)}")
    if limit is not None:
        data.check_limit(limit)
    return parsed, checked
