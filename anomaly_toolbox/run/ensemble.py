"""Ensembles of finished runs: one detector from several models or seeds, no retraining.

Members' raw scores live on unrelated scales (GANomaly's latent distances are ~1e-7, EGBAD's
about 1), so each is first put on a common one with a robust standardisation fitted on the
member's VALIDATION NORMAL scores only: z = (s - median) / (1.4826 * MAD). Normals only, because
that is the one population a deployed detector knows (the anomaly share of validation would
otherwise move the centre); median and MAD, because anomaly scores are skewed and heavy-tailed
and a few extreme normals would dominate a mean and standard deviation. The ensemble score is the
mean of the members' z (or a weighted mean, weights proportional to each member's validation
AUPRC). Nothing here reads test data until the final, single test evaluation.
"""

import json
import os

import numpy as np
import tensorflow as tf

from anomaly_toolbox import metrics
from anomaly_toolbox.data import data_identity
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.files import ensure_writable_dir, write_json
from anomaly_toolbox.run.export import (ScoringModule, check_outside_saved_models,
                                         on_the_scale)
from anomaly_toolbox.run.rundir import RunDir, differences

SHARED = ("dataset", "anomalous_class", "protocol", "split_seed", "limit")
WEIGHTINGS = ("mean", "val_auprc")
MAD_TO_SIGMA = 1.4826  # makes the MAD a standard deviation for normal data


def robust_scale(val_scores, val_labels):
    """(centre, scale) from the validation normals: median and 1.4826 * MAD (IQR or 1 if 0)."""
    normal = np.asarray(val_scores, np.float64)[np.asarray(val_labels) == 0]
    centre = float(np.median(normal))
    scale = MAD_TO_SIGMA * float(np.median(np.abs(normal - centre)))
    if not scale > 0:
        q75, q25 = np.percentile(normal, [75, 25])
        scale = float(q75 - q25) or 1.0
    return centre, scale


def combine(member_scores, centres, scales, weights):
    """Weighted mean of standardised scores; member_scores is a list of (N,) arrays."""
    z = [(np.asarray(s, np.float64) - c) / sc for s, c, sc in zip(member_scores, centres, scales)]
    return np.average(np.stack(z), axis=0, weights=weights)


def read_members(run_dirs):
    """Specs and scores of finished runs; refuses a mix, naming the field that differs."""
    from anomaly_toolbox.run.spec import RunSpec

    if len(run_dirs) < 2:
        raise UsageError("members", ",".join(run_dirs), "at least two finished run folders")
    members = []
    for i, path in enumerate(run_dirs):
        if os.path.realpath(path) in map(os.path.realpath, run_dirs[:i]):
            raise UsageError("members", path, "distinct run folders (this one is listed twice)")
        run_dir, results = RunDir(path), None
        try:
            results = run_dir.results()  # read once: RunSpec.read is given it
            spec, scores = RunSpec.read(run_dir, results=results), run_dir.scores()
        except (OSError, ValueError, UsageError) as e:
            ensemble = isinstance(results, dict) and results.get("model") == "ensemble"
            raise UsageError("members", path, "a run folder; an ensemble cannot be a member "
                             "(list its members instead)" if ensemble else "a finished run "
                             "folder (results.json, scores.npz, saved_model/)") from e
        members.append({"path": path, "recorded": spec.results(), "spec": spec,
                        "scores": scores, "results": results})
    first = members[0]
    dated = next((m for m in members if m["results"].get("data_source")), first)  # older: none
    for m in members[1:]:
        for key in SHARED:
            if m["recorded"][key] != first["recorded"][key]:
                raise UsageError("members", m["path"], f"a run with the same {key} as "
                                 f"{first['path']} ({first['recorded'][key]!r}, not "
                                 f"{m['recorded'][key]!r})")
        for split in ("val_labels", "test_labels"):
            if not np.array_equal(m["scores"][split], first["scores"][split]):
                raise UsageError("members", m["path"], f"the same {split} as {first['path']}")
        old, new = (data_identity(x["results"].get("data_source")) for x in (dated, m))
        if old and new and old != new:  # same name and labels, other images
            raise UsageError("members", m["path"], f"a run on the same images as {dated['path']} "
                             f"(data_source differs: {', '.join(differences(old, new))})")
    return members


def fit(members, weighting="mean"):
    """Scales and weights from validation only."""
    if weighting not in WEIGHTINGS:
        raise UsageError("weighting", weighting, f"one of {', '.join(WEIGHTINGS)}")
    y_val = members[0]["scores"]["val_labels"]
    scales = [robust_scale(m["scores"]["val_scores"], y_val) for m in members]
    if weighting == "mean":
        weights = [1.0] * len(members)
    else:
        if not metrics.has_both_classes(y_val):
            raise UsageError("weighting", weighting, "mean: validation has no anomalies")
        weights = [metrics.ranking_metrics(m["scores"]["val_scores"], y_val)["auprc"]
                   for m in members]
    return [c for c, _ in scales], [s for _, s in scales], weights


def member_input(images):
    """`images` as every member takes them, whatever version exported it (uint8 or float32,
    rank 3 or 4): integers as uint8 once they are checked to lie on 0..255 (as float32, a 0/1
    uint8 mask would look like a batch already scaled to 0..1, which members refuse), floats as
    float32, one (H, W) image as (1, H, W)."""
    x = images[tf.newaxis] if images.shape.rank == 2 else images
    if x.dtype.is_floating:
        return tf.cast(x, tf.float32)
    if x.dtype == tf.uint8:
        return x
    with tf.control_dependencies([on_the_scale(tf.cast(x, tf.float32))]):
        return tf.cast(x, tf.uint8)


class EnsembleModule(tf.Module):
    """Same contract as a single run's SavedModel: score(images), threshold, metadata; traced for
    the same dtypes and ranks (INPUT_SPECS)."""

    INPUT_SPECS = ScoringModule.INPUT_SPECS

    def __init__(self, saved_models, centres, scales, weights, threshold, metadata):
        super().__init__()
        self.members = list(saved_models)
        self.centres = tf.constant(centres, tf.float64)
        self.scales = tf.constant(scales, tf.float64)
        self.weights = tf.constant(np.asarray(weights) / np.sum(weights), tf.float64)
        self.threshold = tf.Variable(float(threshold), trainable=False, name="threshold")
        self.metadata = tf.Variable(json.dumps(metadata), trainable=False, name="metadata")

    @tf.function
    def score(self, images):
        x = member_input(images)
        z = tf.stack([(tf.cast(m.score(x), tf.float64) - self.centres[i]) / self.scales[i]
                      for i, m in enumerate(self.members)])
        return tf.cast(tf.tensordot(self.weights, z, 1), tf.float32)


def check_output(output_dir, identity, threshold_rule="f1"):
    """A new or empty folder, or an ensemble of the same members (by their scores' centre, scale
    and weight, however their paths are written, in any order: the mean does not depend on it),
    weighting and threshold rule, finished or killed while writing (run.json is written first):
    rebuilt in place, in the order given. Never a member's run or anything else kept there, and
    never another rule over a finished one, which a single run's train refuses too."""
    names = [n for n in os.listdir(output_dir) if not n.startswith(".")] \
        if os.path.isdir(output_dir) else []
    if not names:
        return
    run_dir, held = RunDir(output_dir), None
    for path in (run_dir.run_json, run_dir.results_json):  # ensembles before run.json: results
        if os.path.exists(path):
            try:
                held = run_dir.read_json(path)
            except (OSError, ValueError):
                pass
            break
    held = held if isinstance(held, dict) else {}
    if _ensemble_key(held) == _ensemble_key(identity):
        _check_same_rule(run_dir, threshold_rule)
        return
    if held.get("model") != "ensemble":
        what = f"a {held['model']!r} run" if "model" in held else f"{len(names)} other file(s)"
    elif _members(held, weight=False) != _members(identity, weight=False):
        listed = ", ".join(str(m.get("run_dir")) for m in _listed(held))
        what = f"an ensemble of other members ({listed}: a member is known by its scores)"
    else:
        what = f"an ensemble of these members with weighting {held.get('weighting')!r}"
    raise UsageError("output_dir", output_dir, "a new or empty folder, or an ensemble of these "
                     f"same members and weighting (rebuilt in place); it holds {what}")


def _listed(identity):
    return [m for m in identity.get("members") or [] if isinstance(m, dict)]


def _members(identity, weight=True):
    """What tells the members apart, in any order (sorted)."""
    keys = ("model", "train_seed", "centre", "scale") + (("weight",) if weight else ())
    return sorted(([m.get(k) for k in keys] for m in _listed(identity)), key=repr)


def _ensemble_key(identity):
    return identity.get("model"), identity.get("weighting"), _members(identity)


def check_inputs(loaded, run_dirs):
    """The ensemble's SavedModel takes what its first member takes (channels, image sides):
    every other member must take all of it, or it would fail inside the graph at scoring."""
    from anomaly_toolbox.data.inputs import input_rule

    (channels, _, sides), *others = [input_rule(metadata) for _, metadata in loaded]
    for (other_channels, _, other_sides), path in zip(others, run_dirs[1:]):
        if other_channels != channels or (
                other_sides is not None and (sides is None or not set(sides) <= set(other_sides))):
            raise UsageError("members", path, f"a run taking every image {run_dirs[0]} takes "
                             f"({channels} channel(s), sides {sides or 'any'}): list first the "
                             f"member taking the fewest")


def _check_same_rule(run_dir, threshold_rule):
    if not os.path.exists(run_dir.results_json):
        return  # killed before its results: nothing finished to keep
    try:
        kept = metrics.other_rule(run_dir.read_json(run_dir.results_json).get("validation", {}),
                                  threshold_rule)
    except (OSError, ValueError, AttributeError, TypeError):
        return  # unreadable: rebuilt, as before
    if kept:
        raise UsageError("output_dir", run_dir.path, "a new or empty folder, or an ensemble of "
                         f"these same members, weighting and threshold; it holds one with "
                         f"threshold: {kept!r} -> {threshold_rule!r}; choose a new --output_dir")


def build(run_dirs, output_dir, weighting="mean", threshold_rule="f1"):
    """Combines finished runs into one detector written like a run; returns its results dict.
    The threshold is the ensemble's own, chosen on validation by `threshold_rule` as a single
    run's --threshold (never inherited from a member)."""
    from anomaly_toolbox.run import export, figures
    from anomaly_toolbox.run.provenance import versions

    metrics.parse_threshold(threshold_rule)  # refused before any work
    check_outside_saved_models(output_dir)  # as export's: deleted when that one is re-exported
    members = read_members(run_dirs)
    centres, scales, weights = fit(members, weighting)
    listed = [{"run_dir": m["path"], "model": m["spec"].model,
               "train_seed": m["spec"].train_seed, "centre": c, "scale": s, "weight": w}
              for m, c, s, w in zip(members, centres, scales, weights)]
    identity = {**{k: members[0]["recorded"][k] for k in SHARED}, "model": "ensemble",
                "weighting": weighting, "members": listed}
    check_output(output_dir, identity, threshold_rule)
    loaded = [export.load(RunDir(m["path"]).saved_model) for m in members]
    check_inputs(loaded, run_dirs)
    ensure_writable_dir(output_dir)
    run_dir = RunDir(output_dir)
    with run_dir.writing(run_dir.run_json):
        write_json(run_dir.run_json, identity)
    first = members[0]["scores"]
    y_val, y_test = first["val_labels"], first["test_labels"]
    val = combine([m["scores"]["val_scores"] for m in members], centres, scales, weights)
    test = combine([m["scores"]["test_scores"] for m in members], centres, scales, weights)
    threshold = metrics.validation_threshold(val, y_val, threshold_rule)
    results = {**identity, "validation": metrics.evaluate(val, y_val, threshold),
               "test": metrics.evaluate(test, y_test, threshold), "versions": versions()}
    module = EnsembleModule(
        [saved for saved, _ in loaded], centres, scales, weights, threshold,
        {**loaded[0][1], **identity, "config": {"weighting": weighting},
         "threshold_rule": threshold.rule, "anomaly_map": False})  # maps are not combined
    export.save_module(module, run_dir.saved_model)
    run_dir.write_scores(val.astype(np.float32), y_val, test.astype(np.float32), y_test)
    if "auprc" in results["test"]:
        figures.curves(test, y_test, run_dir.figure("curves"))
        figures.histogram(test, y_test, threshold, run_dir.figure("histogram"))
    run_dir.write_results(results)
    return results
