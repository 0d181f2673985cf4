"""Named training budgets: `--profile=cpu` is experiments/<model>_<dataset>_cpu.json.

The files live in the repository's top-level experiments/, where a reader finds and edits them;
a wheel installs a copy under <prefix>/share/anomaly_toolbox/experiments (setup.cfg data_files),
so the README's commands work after `pip install .` from any folder. `--config=FILE` stays for
one's own file."""

import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
INSTALLED = os.path.join("share", "anomaly_toolbox", "experiments")


def folders():
    """Where profiles may be, in order: a source checkout (also an editable install), then the
    data files of the prefix this package was installed into, then of the running Python."""
    site_prefix = os.path.normpath(os.path.join(HERE, "..", "..", "..", ".."))  # lib/pythonX.Y/site-packages
    return [os.path.join(os.path.dirname(HERE), "experiments"),
            os.path.join(site_prefix, INSTALLED), os.path.join(sys.prefix, INSTALLED)]


def _dataset_key(dataset):
    return "folder" if dataset.startswith("folder:") else dataset


def available(model, dataset, search=None):
    """{profile name: path} for this model and dataset, from the first folder that has any."""
    prefix = f"{model}_{_dataset_key(dataset)}_"
    for folder in search or folders():
        found = {os.path.basename(p)[len(prefix):-len(".json")]: p
                 for p in glob.glob(os.path.join(glob.escape(folder), prefix + "*.json"))}
        if found:
            return found
    return {}


def path(model, dataset, profile, search=None):
    """The profile's JSON file, or UsageError naming the profiles this model and dataset have."""
    from anomaly_toolbox.errors import UsageError

    found = available(model, dataset, search)
    if profile not in found:
        names = ", ".join(sorted(found)) or "none (pass --config=FILE)"
        raise UsageError("profile", profile, f"one of {names} for {model} on "
                         f"{_dataset_key(dataset)}")
    return found[profile]


def config_file(model, dataset, profile, config):
    """The JSON file a run reads: `config` as given, or the named `profile`'s; not both."""
    if profile is None:
        return config
    if config is not None:
        from anomaly_toolbox.errors import UsageError

        raise UsageError("profile", profile, "either a profile or a config file, not both")
    return path(model, dataset, profile)
