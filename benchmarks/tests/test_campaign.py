"""The campaign runner: its plan (what remains, how long), its checks, and what it commits."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.tests.conftest import REPO

PART = {"name": "p", "issue": 14, "commit": "95442da", "datasets": ["mnist"], "classes": "1,5",
        "minutes_per_cell": 30,
        "runs": [{"models": ["ganomaly"], "profile": "cpu", "seeds": [0, 1]},
                 {"models": ["egbad"], "profile": "paper", "seeds": [0]}]}


def _cell(results, name, minutes=None, model="ganomaly", profile="cpu", scores=True):
    path = results / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"protocol": "pooled", "dataset": "mnist", "model": model,
                                "config": {"profile": profile}, "wall_time_s": (
                                    {"total_this_invocation": minutes * 60} if minutes else {})}))
    if scores:
        (results / f"{name}.scores.npz").write_bytes(b"kept")


def _campaign(tmp_path, parts):
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps({"parts": parts}))
    return str(path)


def test_plan_counts_finished_cells_and_estimates_from_their_wall_times(tmp_path):
    from benchmarks import campaign

    results = tmp_path / "results"
    _cell(results, "pooled/mnist/ganomaly_cpu/class1_seed0", minutes=10)
    _cell(results, "pooled/mnist/ganomaly_cpu/class1_seed1", minutes=20)
    parts = campaign.load(_campaign(tmp_path, [PART]))
    # class 1: both GANomaly seeds, then EGBAD; class 5 after: whole classes first
    order = [c for k in (1, 5) for _, cells in campaign.class_cells(parts[0], k) for c in cells]
    assert [(c[2], c[4], c[5]) for c in order] == [
        ("ganomaly", 1, 0), ("ganomaly", 1, 1), ("egbad", 1, 0),
        ("ganomaly", 5, 0), ("ganomaly", 5, 1), ("egbad", 5, 0)]
    [_, _, row] = campaign.plan(parts, str(results), workers=2)
    # left: GANomaly class 5 x 2 at the measured 15 min, EGBAD x 2 at the 30 min prior, 2 at once
    assert row == "| p | 14 | 95442da | 2 of 6 | 4 | 0.8 |"
    without_prior = [{**PART, "minutes_per_cell": None}]
    assert campaign.plan(campaign.load(_campaign(tmp_path, without_prior)), str(results),
                         workers=2)[2].endswith("| 4 | ? |")


@pytest.mark.parametrize("change, message", [
    ({"epochs": 3}, "invalid campaign part 'p' key: 'epochs' (expected one of classes, "),
    ({"commit": "HEAD~1"}, "invalid campaign part 'p' commit: 'HEAD~1' (expected a hex commit id)"),
    ({"commit": 95442}, "invalid campaign part 'p' commit: 95442 (expected a hex commit id)"),
    ({"runs": [{"models": ["ganomaly"], "seeds": [0]}]},
     "invalid campaign part 'p' run: \"no 'profile'\" (expected the keys models, profile, seeds)"),
    ({"classes": "one"}, "invalid campaign part 'p' classes: 'one' (expected a range like 0-9"),
    ({"classes": 3}, "invalid campaign part 'p' classes: 3 (expected a range like 0-9"),
    # these passed --plan; each cell's run failed later (and a string of seeds was iterated)
    ({"classes": "0-12"}, "invalid campaign part 'p' classes: '0-12' (expected classes in 0..9"),
    ({"datasets": ["cifar10"]}, "invalid campaign part 'p' datasets: 'cifar10' (expected one of"),
    ({"datasets": "mnist"}, "invalid campaign part 'p' datasets: 'mnist' (expected a non-empty "
                            "list of str values)"),
    ({"protocol": "foo"}, "invalid campaign part 'p' protocol: 'foo' (expected one of"),
    ({"runs": [{"models": ["gan"], "profile": "cpu", "seeds": [0]}]},
     "invalid campaign part 'p' run models: 'gan' (expected one of anogan, autoencoder, "),
    ({"runs": [{"models": ["egbad"], "profile": "cpu", "seeds": "0"}]},
     "invalid campaign part 'p' run seeds: '0' (expected a non-empty list of int values)"),
    ({"runs": [{"models": ["egbad"], "profile": "cpu", "seeds": [-1]}]},
     "invalid campaign part 'p' run seeds: '-1' (expected integers in 0.."),
    ({"runs": []}, "invalid campaign part 'p' runs: [] (expected a non-empty list of objects)"),
])
def test_a_bad_part_is_refused_naming_it(tmp_path, change, message):
    from benchmarks import campaign
    from anomaly_toolbox.errors import UsageError

    with pytest.raises(UsageError) as e:
        campaign.load(_campaign(tmp_path, [{**PART, **change}]))
    assert str(e.value).startswith(message)
    with pytest.raises(UsageError, match="invalid parts: 'q' \\(expected one of p\\)"):
        campaign.load(_campaign(tmp_path, [PART]), only=["q"])
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(UsageError, match="expected a JSON object with a 'parts' list"):
        campaign.load(str(tmp_path / "list.json"))


def test_a_missing_truncated_or_odd_campaign_file_is_a_usage_error(tmp_path):
    """Each was a traceback (FileNotFoundError, JSONDecodeError, AttributeError)."""
    from benchmarks import campaign
    from anomaly_toolbox.errors import UsageError

    (tmp_path / "cut.json").write_text('{"parts": [')
    (tmp_path / "ints.json").write_text('{"parts": [1]}')
    for name, message in [("nope.json", "a readable JSON file"), ("cut.json", "a readable JSON"),
                          ("ints.json", "a 'parts' list of objects")]:
        with pytest.raises(UsageError, match=f"invalid campaign: .*{name}.*{message}"):
            campaign.load(str(tmp_path / name))


def test_a_clone_is_never_used_at_another_commit(tmp_path):
    from benchmarks import campaign
    from anomaly_toolbox.errors import UsageError

    with pytest.raises(UsageError, match="invalid campaign part 'p' commit: 'deadbee' "
                                         "\\(expected a commit of this repository\\)"):
        campaign.clone({**PART, "commit": "deadbee"}, str(tmp_path))
    assert os.listdir(tmp_path) == []  # nothing half-made
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    subprocess.run(["git", "init", "-q", str(tmp_path / f"frozen_{head[:7]}")], check=True)
    with pytest.raises(UsageError, match="invalid clones_dir: .* \\(expected a clone at "):
        campaign.clone({**PART, "commit": head[:7]}, str(tmp_path))


def test_scores_of_an_old_clone_are_kept_from_its_run_folder(tmp_path):
    from benchmarks import publish

    results, runs = tmp_path / "results", tmp_path / "runs"
    _cell(results, "pooled/mnist/ganomaly_cpu/class1_seed2", scores=False)
    run = runs / "pooled/mnist/ganomaly_cpu/class1_seed2"
    run.mkdir(parents=True)
    scores = {"val_scores": np.array([0.5, 2.0]), "val_labels": np.array([0, 1]),
              "test_scores": np.array([1.0, 3.0, 0.1]), "test_labels": np.array([1, 1, 0]),
              "val_index": np.array([4, 7]), "test_index": np.array([1, 2, 3])}
    np.savez(run / "scores.npz", **scores)
    publish.keep_old_scores(str(results), str(runs))
    kept = np.load(results / "pooled/mnist/ganomaly_cpu/class1_seed2.scores.npz")
    assert sorted(kept.files) == ["test_labels", "test_scores", "val_labels", "val_scores"]
    np.testing.assert_allclose(kept["test_scores"], [1.0, 3.0, 0.1])
    assert kept["test_labels"].dtype == bool and kept["test_scores"].dtype == np.float32


def test_only_complete_cells_are_committed(tmp_path, monkeypatch):
    from benchmarks import publish

    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "notes.txt").write_text("a change of someone else's")
    results = repo / "benchmarks" / "results"
    _cell(results, "pooled/mnist/ganomaly_cpu/class1_seed0")
    _cell(results, "pooled/mnist/ganomaly_cpu/class2_seed0", scores=False)  # running
    _cell(results, "pooled/mnist/ganomaly_lr0.5/class1_seed0")  # a dot in a folder
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "t")
    committed = publish.commit_finished(str(repo), "p, issue 14; frozen clone 95442da")
    assert committed == ["benchmarks/results/pooled/mnist/ganomaly_cpu/class1_seed0",
                         "benchmarks/results/pooled/mnist/ganomaly_lr0.5/class1_seed0"]
    tracked = subprocess.run(git + ["ls-files"], capture_output=True, text=True).stdout.split()
    assert tracked == ["benchmarks/results/pooled/mnist/ganomaly_cpu/class1_seed0.json",
                       "benchmarks/results/pooled/mnist/ganomaly_cpu/class1_seed0.scores.npz",
                       "benchmarks/results/pooled/mnist/ganomaly_lr0.5/class1_seed0.json",
                       "benchmarks/results/pooled/mnist/ganomaly_lr0.5/class1_seed0.scores.npz"]
    message = subprocess.run(git + ["log", "-1", "--format=%s"], capture_output=True, text=True)
    assert message.stdout.strip() == ("Results: pooled/mnist/ganomaly_cpu/class1_seed0 "
                                      "pooled/mnist/ganomaly_lr0.5/class1_seed0 "
                                      "(p, issue 14; frozen clone 95442da)")


def test_the_committed_campaign_plans_a_short_deadline_skips_to_what_fits_a_failure_stops(
        tmp_path):
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "benchmarks.campaign", *args], cwd=REPO,
        capture_output=True, text=True)
    plan = run("--plan")
    assert plan.returncode == 0, plan.stderr
    with open(os.path.join(REPO, "benchmarks", "campaigns", "round2.json")) as f:
        names = [p["name"] for p in json.load(f)["parts"]]
    assert [line.split(" | ")[0][2:] for line in plan.stdout.splitlines()[2:]] == names
    bad = run("--hours=0")
    assert bad.returncode == 2 and bad.stderr.strip().endswith(
        "invalid hours: 0.0 (expected a positive number of hours)")
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    # profiles no cell can have: the estimate is the prior, summed over the class's two runs
    never = [{"models": ["egbad"], "profile": "no_such_profile", "seeds": [0]},
             {"models": ["ganomaly"], "profile": "no_such_profile", "seeds": [0]}]
    part = {**PART, "commit": head, "classes": "7", "minutes_per_cell": 60, "runs": never}
    short = run(f"--campaign={_campaign(tmp_path, [part])}", "--hours=0.01",
                f"--clones_dir={tmp_path}")
    assert short.returncode == 0, short.stderr
    assert "p: class 7 needs about 120 min; not starting it" in short.stdout
    assert "not finished for lack of time: p" in short.stdout
    assert os.path.isdir(tmp_path / f"frozen_{head[:7]}" / ".git")
    assert not os.path.exists(tmp_path / f"frozen_{head[:7]}" / "runs")  # nothing trained
    # a later part whose class fits still runs; its clone's benchmark refuses the profile
    # (exit 2): the campaign stops, naming the cells, and starts no part after it
    quick = {**part, "name": "q", "classes": "3", "minutes_per_cell": 0.001, "runs": never[:1]}
    after = {**quick, "name": "r"}
    failing = run(f"--campaign={_campaign(tmp_path, [part, quick, after])}", "--hours=0.01",
                  f"--clones_dir={tmp_path}")
    out = failing.stdout + failing.stderr
    assert "p: class 7 needs about 120 min; not starting it" in failing.stdout, out
    assert "q: 1 cell(s) did not finish" in failing.stdout, out
    assert "pooled/mnist/egbad_no_such_profile/class3_seed0" in failing.stdout
    assert "r: class 3" not in failing.stdout
    assert "not finished for lack of time: p (" in failing.stdout


def test_cells_finished_since_the_campaign_started_set_the_estimate(tmp_path):
    from benchmarks import campaign

    results = tmp_path / "results"
    _cell(results, "pooled/mnist/ganomaly_cpu/class1_seed0", minutes=30)  # an earlier session's
    old = results / "pooled/mnist/ganomaly_cpu/class1_seed0.json"
    os.utime(old, (1_000_000, 1_000_000))
    _cell(results, "pooled/mnist/ganomaly_cpu/class2_seed0", minutes=10)
    key = ("pooled", "mnist", "ganomaly", "cpu")
    assert campaign.measured_minutes(str(results))[key] == pytest.approx(20)
    assert campaign.measured_minutes(str(results), since=2_000_000)[key] == pytest.approx(10)
    assert campaign.measured_minutes(str(results), since=2_000_000)[("*",) + key[1:]] == \
        pytest.approx(10)
    # a cell that ran through a pause (SIGSTOP) does not drag the estimate: the median
    _cell(results, "pooled/mnist/ganomaly_cpu/class3_seed0", minutes=12)
    _cell(results, "pooled/mnist/ganomaly_cpu/class4_seed0", minutes=50)
    assert campaign.measured_minutes(str(results), since=2_000_000)[key] == pytest.approx(12)


def test_a_clone_runs_the_grid_runner_of_its_own_layout(tmp_path):
    """Clones frozen before issue 41 (db8924a: round 3) keep `anomaly_toolbox.bench`; later
    ones have `benchmarks/`; a part may name its module (round 2's oldest clones)."""
    from benchmarks import campaign

    assert campaign.benchmark_module(PART, str(tmp_path)) == "anomaly_toolbox.bench.benchmark"
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "benchmark.py").write_text("")
    assert campaign.benchmark_module(PART, str(tmp_path)) == "benchmarks.benchmark"
    named = {**PART, "module": "anomaly_toolbox.benchmark"}
    assert campaign.benchmark_module(named, str(tmp_path)) == "anomaly_toolbox.benchmark"


def test_a_bad_campaign_answers_before_tensorflow_loads(tmp_path):
    """Its module imported TensorFlow (through the ensembles), so start-up lines came before the
    `error:` line, and a bad class or model passed --plan to fail in every cell's run."""
    path = _campaign(tmp_path, [{**PART, "classes": "0-12"}])
    done = subprocess.run([sys.executable, "-m", "benchmarks.campaign", f"--campaign={path}",
                           "--plan"], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert done.returncode == 2 and done.stderr == (
        "error: invalid campaign part 'p' classes: '0-12' (expected classes in 0..9, like 0-9 "
        "or 1,3,5)\n")


def test_models_cuts_each_part_to_those_models_runs(tmp_path):
    """A class whose two cells do not fit one session runs model by model, from the committed
    campaign file (a session-local copy holding one run did this before)."""
    from benchmarks import campaign

    parts = campaign.load(_campaign(tmp_path, [PART, {**PART, "name": "q", "runs": PART["runs"][:1]}]))
    cut = campaign.only_models(parts, ["egbad"])
    assert [p["name"] for p in cut] == ["p"]  # q holds no EGBAD run
    assert [(r["models"], r["profile"]) for r in cut[0]["runs"]] == [(["egbad"], "paper")]
    assert [c[2] for _, cells in campaign.class_cells(cut[0], 1) for c in cells] == ["egbad"]
    assert campaign.only_models(parts, None) == parts
    done = subprocess.run([sys.executable, "-m", "benchmarks.campaign",
                           f"--campaign={_campaign(tmp_path, [PART])}", "--plan",
                           "--models=anogan"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and done.stderr == (
        "error: invalid models: 'anogan' (expected a model of the chosen parts' runs: egbad, "
        "ganomaly)\n")
