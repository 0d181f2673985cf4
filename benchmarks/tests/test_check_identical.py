"""benchmarks.md, its charts and every derived cell regenerate byte for byte from the committed
cells; and (where git history reaches back) the move out of the package changed no byte of a
result but the tool paths the texts print."""

import subprocess

import pytest

from benchmarks import REPO, check_identical


def test_since_the_move_only_the_printed_tool_paths_changed():
    known = subprocess.run(["git", "-C", REPO, "cat-file", "-e", check_identical.BEFORE + "^{commit}"],
                           capture_output=True)
    if known.returncode != 0:
        pytest.skip(f"a shallow clone: no commit {check_identical.BEFORE}")
    differ, substituted, checked, _ = check_identical.moved_differences(trees=("results",))
    assert differ == [] and checked > 1700  # later cells are added files, never changed ones
    assert substituted == [f"benchmarks/results/{f}" for f in (
        "peer.json", "peer.md", "speed.json", "speed.md", "speed_settings.md")]


def test_the_table_only_regeneration_reproduces_every_committed_byte(tmp_path, monkeypatch):
    """Every file but one regenerates byte for byte; that one, a derived cell edited by hand
    in a copy of the results, is found (it is rewritten from the kept scores)."""
    import shutil

    copy = tmp_path / "results"
    shutil.copytree(check_identical.RESULTS, copy)
    cell = copy / "pooled" / "mnist" / "gan3_ensemble_cpu" / "class1_seed2.json"
    cell.write_bytes(cell.read_bytes().replace(b"}", b"} ", 1))
    monkeypatch.setattr(check_identical, "RESULTS", str(copy))
    assert check_identical.regenerated_differences() == [  # benchmarks.md and figures included
        "results/pooled/mnist/gan3_ensemble_cpu/class1_seed2.json"]
