"""A campaign file (benchmarks/campaigns/*.json) read and checked before anything runs: every
value a cell's benchmark run would refuse is refused here, naming the part and its key."""

import json

from benchmarks import benchmark
from anomaly_toolbox.errors import UsageError

PART_KEYS = {"name", "issue", "commit", "module", "protocol", "datasets", "classes", "runs",
             "minutes_per_cell", "why"}
RUN_KEYS = {"models", "profile", "seeds", "record_test_curve"}


def _check_keys(where, given, allowed, required):
    for key in sorted(set(given) - allowed):
        raise UsageError(f"{where} key", key, f"one of {', '.join(sorted(allowed))}")
    for key in sorted(required - set(given)):
        raise UsageError(where, f"no {key!r}", f"the keys {', '.join(sorted(required))}")


def _list_of(where, value, kind, valid=None):
    """A JSON list of `kind` (a bare string is refused: "0" would be read as the list of its
    characters), each in `valid` when given."""
    if not isinstance(value, list) or not value or not all(
            isinstance(v, kind) and not isinstance(v, bool) for v in value):
        raise UsageError(where, value, f"a non-empty list of {kind.__name__} values")
    for v in value:
        if valid is not None and v not in valid:
            raise UsageError(where, v, f"one of {', '.join(sorted(valid))}")
    return value


def _check_values(where, part):
    """What each cell's benchmark run would refuse, refused by --plan before any run."""
    from anomaly_toolbox import models
    from anomaly_toolbox.data.datasets import DATASETS

    _list_of(f"{where} datasets", part["datasets"], str, DATASETS)
    if not isinstance(part["runs"], list) or not part["runs"] \
            or not all(isinstance(r, dict) for r in part["runs"]):
        raise UsageError(f"{where} runs", part["runs"], "a non-empty list of objects")
    if not isinstance(part["classes"], str):
        raise UsageError(f"{where} classes", part["classes"], "a range like 0-9 or a list like "
                         "1,3,5")
    for run in part["runs"]:
        _check_keys(f"{where} run", run, RUN_KEYS, {"models", "profile", "seeds"})
        _list_of(f"{where} run models", run["models"], str, models.names())
        if not isinstance(run["profile"], str) or not run["profile"]:
            raise UsageError(f"{where} run profile", run["profile"], "a profile name")
        seeds = _list_of(f"{where} run seeds", run["seeds"], int)
        try:
            benchmark.check_grid(part["classes"], [str(s) for s in seeds],
                                 part.get("protocol", "pooled"))
        except UsageError as e:  # the benchmark's own check, named as the file's key
            key = "run seeds" if e.argument == "seeds" else e.argument
            raise UsageError(f"{where} {key}", e.value, e.valid) from None


def only_models(parts, names):
    """The parts with their runs cut to `names` (a part left with none is dropped)."""
    if not names:
        return parts
    cut = [{**p, "runs": [{**r, "models": [m for m in r["models"] if m in names]}
                          for r in p["runs"] if set(r["models"]) & set(names)]} for p in parts]
    return [p for p in cut if p["runs"]]


def load(path, only=None):
    """The campaign's parts, checked before anything runs."""
    try:  # a missing or malformed file is one error line, not a traceback
        with open(path) as f:
            parts = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError("campaign", path, f"a readable JSON file ({e})") from e
    if not isinstance(parts, dict) or not isinstance(parts.get("parts"), list) \
            or not all(isinstance(p, dict) for p in parts["parts"]):
        raise UsageError("campaign", path, "a JSON object with a 'parts' list of objects")
    parts = parts["parts"]
    names = [p.get("name") for p in parts]
    for part in parts:
        where = f"campaign part {part.get('name')!r}"
        _check_keys(where, part, PART_KEYS, {"name", "commit", "datasets", "classes", "runs"})
        commit = part["commit"]
        if not (isinstance(commit, str) and 7 <= len(commit) <= 40
                and all(c in "0123456789abcdef" for c in commit)):
            raise UsageError(f"{where} commit", commit, "a hex commit id")
        _check_values(where, part)
    for name in only or []:
        if name not in names:
            raise UsageError("parts", name, f"one of {', '.join(names)}")
    return [p for p in parts if not only or p["name"] in only]
