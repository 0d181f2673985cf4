"""The research bench beside the toolbox: grid runs, the campaign runner, the studies and the
speed tools that regenerate `benchmarks.md` (run from the repository root as
`python -m benchmarks.<tool>`). Not installed: it uses `anomaly_toolbox` as a user's code does,
and finds the checkout from its own location."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")
CAMPAIGNS = os.path.join(REPO, "benchmarks", "campaigns")
EXPERIMENTS = os.path.join(REPO, "experiments")
BENCHMARKS_MD = os.path.join(REPO, "benchmarks.md")


def child_env(**extra):
    """os.environ for a child Python that imports `benchmarks` from any working folder."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": REPO + (os.pathsep + path if path else ""), **extra}
