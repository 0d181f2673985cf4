"""Must hold (issue 41): the move of the bench out of the package changed no result.

  python -m benchmarks.check_identical [--before=e1c153c]

1. Regenerates, into a scratch folder, the derived ensemble cells (from a copy of
   benchmarks/results), benchmarks.md and its charts, as `python -m benchmarks.benchmark
   --table_only` does, and compares them byte for byte with the committed files.
2. With a commit from before the move (git history needed): every file of its `results/`,
   `figures/` and `benchmarks.md` equals the file at its new path byte for byte, after only the
   path SUBSTITUTIONS below (the tool paths the texts print); it lists the files they touched.
"""

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

from benchmarks import BENCHMARKS_MD, REPO, RESULTS

BEFORE = "e1c153c"  # the last commit with anomaly_toolbox/bench/ and results/ at the root
SUBSTITUTIONS = (  # (before, after): where the tools, cells, campaigns and tests now live
    (b"anomaly_toolbox.bench.", b"benchmarks."),
    (b"experiments/campaigns/", b"benchmarks/campaigns/"),
    (b"from the files in `results/`", b"from the files in `benchmarks/results/`"),
    (b"`tests/test_budget_curve.py`", b"`benchmarks/tests/test_budget_curve.py`"),
    (b" --investigate=", b""),  # the speed tool's flag for its removed investigation code
    (b"(`anomaly_toolbox/__init__.py`)", b"(the commands set it: `anomaly_toolbox/cli.py`)"),  # oneDNN default moved
    (b"(README, Protocols)", b"([docs/protocols.md](docs/protocols.md))"),  # the README's section moved
)
MOVE = "a61d9ca"  # the commit of the move
# Speed reports measured again since the move (a re-run rewrites them by design): the move is
# judged on their bytes at MOVE, not on the working tree's. peer.* and speed.*: issue 39's re-runs.
REMEASURED = tuple(f"benchmarks/results/{name}" for name in
                   ("peer.json", "peer.md", "speed.json", "speed.md"))
MOVED = (("results/", "benchmarks/results/"), ("figures/", "figures/"),
         ("benchmarks.md", "benchmarks.md"))


def regenerate(out):
    """The table-only regeneration into `out`: results/ (copied, ensembles rewritten),
    benchmarks.md and figures/."""
    from benchmarks import ensembles, report

    results = os.path.join(out, "results")
    shutil.copytree(RESULTS, results)
    ensembles.write_all(results)
    report.write(results, os.path.join(out, "benchmarks.md"))
    return results


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, _, names in os.walk(root) for n in names)


def regenerated_differences():
    """Files whose regeneration differs from the committed file (empty: byte-identical)."""
    with tempfile.TemporaryDirectory(prefix="check-identical-") as out:
        results = regenerate(out)
        pairs = [(os.path.join(results, f), os.path.join(RESULTS, f))
                 for f in sorted(set(_files(results)) | set(_files(RESULTS)))]
        pairs.append((os.path.join(out, "benchmarks.md"), BENCHMARKS_MD))
        pairs += [(os.path.join(out, "figures", f), os.path.join(REPO, "figures", f))
                  for f in _files(os.path.join(out, "figures"))]
        return [os.path.relpath(mine, out) for mine, committed in pairs
                if not (os.path.exists(mine) and os.path.exists(committed)
                        and filecmp.cmp(mine, committed, shallow=False))]


def _git(*args, **kwargs):
    return subprocess.run(["git", "-C", REPO, *args], check=True, capture_output=True, **kwargs)


def moved_differences(before=BEFORE, trees=("results", "figures", "benchmarks.md")):
    """(files differing after the substitutions, files the substitutions changed, files
    checked, cells added since), comparing commit `before`'s `trees` with the working tree
    (REMEASURED reports: with the move commit).
    Cells finished since `before` are new files, not differences (a cell never changes); a
    regenerated benchmarks.md and its charts follow them, so compare those with the commit
    where they were last regenerated."""
    listed = _git("ls-tree", "-r", "--name-only", before, "--", *trees, text=True).stdout.split()
    blobs = _git("cat-file", "--batch", input="".join(
        f"{before}:{p}\n" for p in listed).encode()).stdout
    differ, substituted, at = [], [], 0
    for path in listed:
        end = blobs.index(b"\n", at)
        size = int(blobs[at:end].split()[2])
        old, at = blobs[end + 1:end + 1 + size], end + 2 + size
        new_path = next(new + path[len(old_prefix):] for old_prefix, new in MOVED
                        if path.startswith(old_prefix))
        expected = old
        for a, b in SUBSTITUTIONS:
            expected = expected.replace(a, b)
        if new_path in REMEASURED:
            now = _git("show", f"{MOVE}:{new_path}").stdout
        else:
            with open(os.path.join(REPO, new_path), "rb") as f:
                now = f.read()
        if now != expected:
            differ.append(new_path)
        if expected != old:
            substituted.append(new_path)
    added = sorted(set(_files(RESULTS)) - {p[len("results/"):] for p in listed})
    return differ, substituted, len(listed), added


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help="a commit from before the move")
    args = parser.parse_args(argv)
    regenerated = regenerated_differences()
    print("regenerated == committed: " + ("yes" if not regenerated else
                                          f"NO, {len(regenerated)} differ: {regenerated[:20]}"))
    differ, substituted, checked, added = moved_differences(args.before)
    print(f"{checked} files of {args.before} == committed after the path substitutions: "
          + ("yes" if not differ else f"NO, {len(differ)} differ: {differ[:20]}"))
    print("files the substitutions changed: " + ", ".join(substituted))
    print(f"files in benchmarks/results/ added since {args.before}: {len(added)}")
    return 1 if regenerated or differ else 0


if __name__ == "__main__":
    sys.exit(main())
