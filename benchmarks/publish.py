"""What a campaign commits: each finished cell, then the report that follows it (benchmarks.md,
its figures, the derived ensemble cells and the README's quoted sentences) in the next commit,
so main never holds a cell its report does not show for longer than one regeneration."""

import os
import re
import subprocess
import sys

import numpy as np

from benchmarks import REPO, RESULTS, benchmark
from benchmarks.cells import cell_files

RESULTS_PATH = os.path.relpath(RESULTS, REPO).replace(os.sep, "/")  # in git's paths
CELL_FILE = re.compile(rf"^({re.escape(RESULTS_PATH)}/[^/]+/[^/]+/[^/]+/class\d+_seed\d+)"
                       r"\.(json|scores\.npz|test_curve\.csv)$")
QUOTES_START = "**The survey's question"  # the README block whose quotes benchmarks.md prints
REPORT_FILE = re.compile(rf"^(benchmarks\.md|README\.md|figures/.*|{re.escape(RESULTS_PATH)}"
                         r"/[^/]+/[^/]+/[^/]+_ensemble_[^/]+/[^/]+)$")  # ensembles: derived cells


def keep_old_scores(results_dir, runs_dir):
    """A clone older than kept scores copies only results.json: keep its run's scores too."""
    for path in cell_files(results_dir):
        target = path[:-len(".json")]
        source = os.path.join(runs_dir, os.path.relpath(target, results_dir), "scores.npz")
        if not os.path.exists(target + ".scores.npz") and os.path.exists(source):
            benchmark.keep_scores(dict(np.load(source)), target)


def _git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)


def commit_finished(repo, label):
    """Commits every new cell under `repo`/benchmarks/results/ whose .json and .scores.npz both
    exist (the .json is written last, so a cell in progress is never committed half)."""
    status = _git(repo, "status", "--porcelain", "-z", "--untracked-files=all", "--",
                  RESULTS_PATH).stdout
    files = [entry[3:] for entry in status.split("\0") if CELL_FILE.search(entry[3:])]
    cell = lambda f: CELL_FILE.match(f).group(1)  # noqa: E731  (folder names may hold dots)
    cells = sorted({cell(f) for f in files if all(
        os.path.exists(os.path.join(repo, cell(f) + end)) for end in (".json", ".scores.npz"))})
    paths = [f for f in files if cell(f) in cells]
    if paths and _git(repo, "add", "--", *paths).returncode == 0:  # else a busy index: next round
        names = " ".join(c[len(RESULTS_PATH) + 1:] for c in cells)
        _git(repo, "commit", "--quiet", "-m", f"Results: {names} ({label})", "--", *paths)
    return cells


def follow_quotes(readme, printed):
    """The README with each quote of its survey's-question block replaced by the benchmarks.md
    bullet that starts the same way (up to the first digit, else up to the first comma:
    "At the papers' budget (mnist,"),
    and the quotes that found no single such bullet (left as they were)."""
    start = readme.find(QUOTES_START)
    if start < 0:
        return readme, [QUOTES_START]
    end = readme.find("\n## ", start)
    end = len(readme) if end < 0 else end
    bullets = [line[2:] for line in printed.splitlines() if line.startswith("- ")]
    unmatched = []

    def follow(match):
        quote = " ".join(match.group(1).split())
        digit = re.search(r"\d", quote)
        for key in (quote[:digit.start()] if digit else quote, quote.split(",")[0] + ","):
            same = [b for b in bullets if b.startswith(key)]
            if len(same) == 1:
                return f'"{same[0]}"'
        unmatched.append(quote)
        return match.group(0)

    block = re.sub(r'"([^"]+)"', follow, readme[start:end])
    return readme[:start] + block + readme[end:], unmatched


def _regenerate(repo):
    out = subprocess.run([sys.executable, "-m", "benchmarks.benchmark", "--table_only"], cwd=repo,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"regenerating benchmarks.md failed: {out.stderr.strip()[-500:]}")


def report(repo, label, regenerate=_regenerate):
    """Regenerates and commits the report after finished cells; skipped (saying so) when someone
    has uncommitted edits in its files, which a commit here would take with it."""
    edited = _git(repo, "status", "--porcelain", "--", "benchmarks.md", "README.md",
                  "figures").stdout.rstrip()
    if edited:
        print(f"not regenerating benchmarks.md: uncommitted edits in\n{edited}", flush=True)
        return False
    regenerate(repo)
    path = os.path.join(repo, "README.md")
    with open(path) as f:
        readme = f.read()
    with open(os.path.join(repo, "benchmarks.md")) as f:
        followed, unmatched = follow_quotes(readme, f.read())
    if followed != readme:
        with open(path, "w") as f:
            f.write(followed)
    for quote in unmatched:
        print(f"README quote with no single benchmarks.md line to follow: {quote[:80]}",
              flush=True)
    status = _git(repo, "status", "--porcelain", "-z", "--untracked-files=all").stdout
    paths = [e[3:] for e in status.split("\0") if REPORT_FILE.match(e[3:])]  # no grid cell
    if not paths or _git(repo, "add", "-A", "--", *paths).returncode:
        return False  # nothing moved, or a busy index: the next cell's report
    message = f"benchmarks.md regenerated after {label}; README's quotes follow"
    return _git(repo, "commit", "--quiet", "-m", message, "--", *paths).returncode == 0
