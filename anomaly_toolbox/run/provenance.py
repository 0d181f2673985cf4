"""What produced a result: code commit, library versions, CPU vector set and TF settings."""

import os
import platform
import subprocess


def git_commit():
    """The code's commit (with '+changes' if the tree is dirty), or None outside a git checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+changes" if dirty else "")) or None


def vector_isa(cpuinfo="/proc/cpuinfo"):
    """Widest x86 vector set: AVX2 and AVX-512 kernels round differently, and run at different
    speeds (a same-load comparison is still to be made; cell wall times vary more with load)."""
    try:
        with open(cpuinfo) as f:
            flags = f.read()
    except OSError:
        return None
    return next((name for name, flag in (("AVX-512", " avx512f"), ("AVX2", " avx2"))
                 if flag in flags), None)


def versions():
    import keras
    import numpy as np
    import sklearn
    import tensorflow as tf

    return {"git_commit": git_commit(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "machine": ", ".join(filter(None, (f"{platform.machine()} {os.cpu_count()} cpus",
                                               vector_isa()))),
            # oneDNN changes kernels (and so, by rounding, GAN training trajectories)
            **{k: os.environ.get(k, "unset") for k in
               ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}}
