"""GAN-based unsupervised anomaly detection (AnoGAN, EGBAD, GANomaly, f-AnoGAN, an autoencoder)
in TensorFlow 2 / Keras 3: the commands train, score, export, ensemble, and a Python API (`fit`,
`load`, `read_results`, `Detector`). Importing the package imports no TensorFlow and sets nothing."""

import importlib.util
import sys

__version__ = "0.1.0"


def _missing_tensorflow():
    """Which of tensorflow / keras cannot be imported: both come from an install extra, so a
    plain `pip install -e .` has neither."""
    for name in ("tensorflow", "keras"):
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def _entry_point():
    """True when this import is on behalf of a command line: a module `anomaly_toolbox...` that
    runpy is about to run as __main__ (`python -m`, however spelled, or runpy.run_module), or
    `anomaly_toolbox.__main__`, which the `anomaly-toolbox` console script imports. Read from the
    import's own frames, not argv: `-mNAME`, `python -c` + runpy and wrappers defeat argv parsing."""
    frame = sys._getframe(1)
    while frame is not None:
        module, names = frame.f_globals.get("__name__"), frame.f_locals
        if module == "runpy" and str(names.get("mod_name", "")).startswith("anomaly_toolbox"):
            return True
        if module == "importlib._bootstrap" and names.get("name") == "anomaly_toolbox.__main__":
            return True
        frame = frame.f_back
    return False


if _missing_tensorflow():
    _ADVICE = (f"{_missing_tensorflow()} is not installed; install the package with TensorFlow: "
               f'pip install -e ".[cpu]" on a CPU machine, or pip install -e ".[gpu]" with CUDA')
    if _entry_point():
        print(f"error: {_ADVICE}", file=sys.stderr)
        sys.exit(2)
    raise ModuleNotFoundError(_ADVICE, name=_missing_tensorflow())

_API = ("api", "fit", "load", "read_results", "Detector")


def __getattr__(name):
    """The notebook API (anomaly_toolbox/api.py) on first use, so importing the package stays
    light: no TensorFlow until a detector is loaded or a run trained. Importing it changes
    nothing in the process (no environment variable: the commands set theirs, see cli.py)."""
    if name in _API:
        from importlib import import_module

        api = import_module("anomaly_toolbox.api")
        return api if name == "api" else getattr(api, name)
    raise AttributeError(f"module 'anomaly_toolbox' has no attribute {name!r}")
