"""Quiet misuse and small faults (issue 40): no TensorFlow, a finished run asked for another
threshold, the RGB extremes figure, an output folder the user cannot write."""

import os
import subprocess
import sys

import pytest
from conftest import REPO

ADVICE = 'pip install -e ".[cpu]"'
HIDE_TENSORFLOW = (
    "import sys\n"
    "class Hide:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('tensorflow', 'keras'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Hide())\n")
CONSOLE = os.path.join(os.path.dirname(sys.executable), "anomaly-toolbox")
RUNPY = "import runpy; runpy.run_module({!r}, run_name='__main__', alter_sys=True)"
ENTRY_POINTS = {
    "console": [CONSOLE, "train", "--epochs=1"],
    "console no command": [CONSOLE],
    **{module: [sys.executable, "-m", module, "--help"] for module in (
        "anomaly_toolbox", "anomaly_toolbox.train", "anomaly_toolbox.score",
        "anomaly_toolbox.export", "anomaly_toolbox.ensemble", "anomaly_toolbox.bench.benchmark",
        "anomaly_toolbox.bench.sweep", "anomaly_toolbox.bench.speed",
        "anomaly_toolbox.bench.campaign", "anomaly_toolbox.bench.speed_settings",
        "anomaly_toolbox.bench.precision_speed", "anomaly_toolbox.bench.anogan_speed",
        "anomaly_toolbox.bench.fanogan_speed")},
    # what argv parsing missed: -m glued to its module, and runpy started from -c
    "-mNAME": [sys.executable, "-manomaly_toolbox.train"],
    "runpy": [sys.executable, "-c", RUNPY.format("anomaly_toolbox.score")],
}


def _without_tensorflow(tmp_path, command):
    """`command` in a child whose imports cannot find tensorflow or keras (a sitecustomize on
    PYTHONPATH), as in an environment installed without the `cpu`/`gpu` extra."""
    (tmp_path / "sitecustomize.py").write_text(HIDE_TENSORFLOW)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(tmp_path),
                          timeout=120)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_without_tensorflow_every_entry_point_says_one_line(tmp_path, entry):
    if entry.startswith("console") and not os.path.exists(CONSOLE):
        pytest.fail("pip install -e . installs the console command")
    proc = _without_tensorflow(tmp_path, ENTRY_POINTS[entry])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr  # no traceback
    assert proc.stderr.startswith("error: tensorflow is not installed") and ADVICE in proc.stderr
    assert not proc.stdout


def test_without_tensorflow_a_library_import_raises_with_the_advice(tmp_path):
    """A notebook or script gets an exception it can catch, not an exit."""
    proc = _without_tensorflow(tmp_path, [sys.executable, "-c", "import anomaly_toolbox.train"])
    assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr and ADVICE in proc.stderr
    proc = _without_tensorflow(tmp_path, [sys.executable, "-c", (
        "try:\n    import anomaly_toolbox\nexcept ModuleNotFoundError as e:\n"
        "    print(e.name)")])
    assert proc.returncode == 0 and proc.stdout == "tensorflow\n", proc.stderr
