"""Named budgets: --profile=NAME is experiments/<model>_<dataset>_<NAME>.json, from a source
checkout or from where a wheel installs them."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from anomaly_toolbox import profiles
from anomaly_toolbox.errors import UsageError


def test_a_profile_names_the_experiments_file():
    assert profiles.path("ganomaly", "mnist", "cpu") == os.path.join(
        REPO, "experiments", "ganomaly_mnist_cpu.json")
    assert profiles.path("ganomaly", "folder:/data/mine", "cpu").endswith("ganomaly_folder_cpu.json")
    assert {"cpu", "paper", "cpu_bf16"} <= set(profiles.available("ganomaly", "mnist"))


def test_an_installed_copy_is_found_when_there_is_no_checkout(tmp_path):
    share = tmp_path / "share" / "anomaly_toolbox" / "experiments"
    share.mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "experiments", "egbad_mnist_cpu.json"), share)
    found = profiles.path("egbad", "mnist", "cpu", search=[str(tmp_path / "none"), str(share)])
    assert json.load(open(found))["profile"] == "cpu"
    # a wheel's data files: <prefix>/share/..., the prefix being the one the package went into
    site_packages = os.path.dirname(os.path.dirname(profiles.__file__))
    prefix = os.path.dirname(os.path.dirname(os.path.dirname(site_packages)))
    assert profiles.folders()[1:] == [os.path.join(prefix, profiles.INSTALLED),
                                      os.path.join(sys.prefix, profiles.INSTALLED)]


def test_bad_profiles_and_both_sources_are_refused():
    with pytest.raises(UsageError, match=r"invalid profile: 'cpuu' \(expected one of .*cpu.*paper"):
        profiles.path("ganomaly", "mnist", "cpuu")
    with pytest.raises(UsageError, match="either a profile or a config file, not both"):
        profiles.config_file("ganomaly", "mnist", "cpu", "my.json")
    assert profiles.config_file("ganomaly", "mnist", None, "my.json") == "my.json"


def test_the_cli_refuses_a_bad_profile_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "anomaly_toolbox.train", "--model=egbad",
                          "--profile=fast", f"--output_dir={tmp_path / 'r'}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: invalid profile: 'fast'")
    assert not (tmp_path / "r").exists()



def test_the_papers_budget_by_default_is_said_not_silent(tmp_path):
    """No --profile or --config means hours of training: once every flag passed, the command says
    so before training (the child is stopped at that line); a bad flag stays one line."""
    child = subprocess.Popen([sys.executable, "-m", "anomaly_toolbox.train", "--model=egbad",
                              f"--output_dir={tmp_path / 'r'}"],
                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                             cwd=tmp_path)
    try:
        first = child.stderr.readline()
    finally:
        child.kill()
        child.wait()
    assert first.startswith("note: no --profile or --config: egbad trains with its paper's"), first
    bad = subprocess.run([sys.executable, "-m", "anomaly_toolbox.train", "--model=egbad",
                          f"--data_dir={tmp_path / 'none'}"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert bad.returncode == 2 and "note:" not in bad.stderr
    assert bad.stderr.strip().startswith("error: invalid data_dir")
