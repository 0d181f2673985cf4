"""After a campaign cell: the report follows in one commit, the README's quotes with it."""

import subprocess

import pytest

from benchmarks import publish

README = ('# x\n\n**The survey\'s question.** "At the papers\' budget (mnist, pooled, seed 0, 3 of '
          '10 classes), EGBAD wins 2." and "At the `cpu` budget (mnist, pooled), EGBAD loses."\n'
          '\n## Next\n"At the papers\' budget (mnist, outside the block)."\n')
PRINTED = ("# Benchmarks\n- At the papers' budget (mnist, pooled, seed 0, 4 of 10 classes), EGBAD "
           "wins 3.\n- At the `cpu` budget (mnist, pooled), EGBAD loses.\n")


def test_each_quote_follows_the_bullet_that_starts_the_same_way():
    followed, unmatched = publish.follow_quotes(README, PRINTED)
    assert unmatched == []
    assert ('"At the papers\' budget (mnist, pooled, seed 0, 4 of 10 classes), EGBAD wins 3." and '
            '"At the `cpu` budget (mnist, pooled), EGBAD loses."') in followed
    assert '"At the papers\' budget (mnist, outside the block)."' in followed  # not in the block
    seeds = PRINTED.replace("seed 0, 4 of 10", "seeds 0-1, 20 of 20")  # the first digit moved:
    followed, unmatched = publish.follow_quotes(README, seeds)  # up to the first comma then
    assert unmatched == [] and "(mnist, pooled, seeds 0-1, 20 of 20 classes), EGBAD wins 3." in followed


@pytest.mark.parametrize("printed", [
    "- At the papers' budget (fashion_mnist, pooled), 1.\n- At the `cpu` budget (mnist, pooled), EGBAD "
    "loses.\n",
    PRINTED + "- At the papers' budget (mnist, pooled, seed 1, 2 of 10 classes).\n"])  # none, two
def test_a_quote_without_one_bullet_to_follow_is_left_and_named(printed):
    followed, unmatched = publish.follow_quotes(README, printed)
    assert followed == README
    assert unmatched == ["At the papers' budget (mnist, pooled, seed 0, 3 of 10 classes), EGBAD "
                         "wins 2."]


def _repo(tmp_path, monkeypatch):
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "t")
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README.md").write_text(README)
    (repo / "benchmarks.md").write_text("# Benchmarks\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "start"], check=True)
    return repo


def _regenerate(repo):
    with open(f"{repo}/benchmarks.md", "w") as f:
        f.write(PRINTED)
    ensemble = f"{repo}/{publish.RESULTS_PATH}/pooled/mnist/egbad+ganomaly_ensemble_paper"
    subprocess.run(["mkdir", "-p", ensemble, ensemble.replace("egbad+ganomaly_ensemble_paper",
                                                              "egbad_paper")], check=True)
    for path in (f"{ensemble}/class3_seed0.json",
                 ensemble.replace("egbad+ganomaly_ensemble_paper", "egbad_paper/class4_seed0.json")):
        with open(path, "w") as f:
            f.write("{}")


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True).stdout


def test_the_report_commit_holds_the_report_the_quotes_and_derived_cells_only(
        tmp_path, monkeypatch):
    repo = _repo(tmp_path, monkeypatch)
    assert publish.report(str(repo), "part p", regenerate=_regenerate)
    assert _git(repo, "log", "-1", "--format=%s").strip() == (
        "benchmarks.md regenerated after part p; README's quotes follow")
    assert sorted(_git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        "README.md", "benchmarks.md",
        f"{publish.RESULTS_PATH}/pooled/mnist/egbad+ganomaly_ensemble_paper/class3_seed0.json"]
    assert "4 of 10 classes" in (repo / "README.md").read_text()
    assert "egbad_paper/" in _git(repo, "status", "--porcelain", "-uall")  # a grid cell: not here
    assert not publish.report(str(repo), "part p", regenerate=_regenerate)  # nothing moved


def test_uncommitted_edits_to_the_readme_are_never_taken_into_a_report_commit(
        tmp_path, monkeypatch, capsys):
    repo = _repo(tmp_path, monkeypatch)
    (repo / "README.md").write_text(README + "someone's draft\n")
    assert not publish.report(str(repo), "part p", regenerate=_regenerate)
    assert _git(repo, "log", "--format=%s").split("\n")[0] == "start"
    assert (repo / "benchmarks.md").read_text() == "# Benchmarks\n"  # not even regenerated
    assert "uncommitted edits in\n M README.md\n" in capsys.readouterr().out
