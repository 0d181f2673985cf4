"""Quality beside the peer (issue 39): anomalib's GANomaly trained on exactly the split, budget
and widths of our `ganomaly_<profile>` cells, selected on validation as our cells are.

    python -m benchmarks.peer_quality --peer_python=PEER/bin/python --datasets=mnist \
        --classes=0-9 --seeds=0 --data_dir=../shared/data

Per cell, the split comes from the package's own `load_splits` and `to_model_input` (the 32x32
[-1, 1] input our model sees), goes to a temporary .npz, and `peer_anomalib_train.py` trains the
peer on it in the peer's virtual environment and writes every epoch's validation and test
scores. Here the epoch is chosen as our training chooses it (the first best validation AUPRC;
test scores are never read for it) and tested with our metric functions. Results go to
`<results_dir>/<protocol>/<dataset>/anomalib_ganomaly_<profile>/class<k>_seed<s>.json` (+
`.scores.npz`), under `benchmarks/results/peer_quality/`, where the grid's tables and ensembles
never look; a finished cell is skipped. benchmarks.md's section: peer_quality_report.py.
"""

import json
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from absl import flags

from anomaly_toolbox import cli
from benchmarks import EXPERIMENTS, RESULTS, child_env, peer_quality_report

FLAGS = flags.FLAGS
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_anomalib_train.py")
PEER_RESULTS = os.path.join(RESULTS, peer_quality_report.FOLDER)
PEER_MODEL, OURS = peer_quality_report.PEER, peer_quality_report.OURS


def define_flags():
    flags.DEFINE_string("peer_python", None, "Python of the peer's virtual environment (anomalib).")
    flags.DEFINE_list("datasets", ["mnist"], "Datasets.")
    flags.DEFINE_string("classes", "0-9", "Anomalous classes: '0-9' or '1,3,5'.")
    flags.DEFINE_list("seeds", ["0"], "Training seeds (the seeds of our cells to pair with).")
    flags.DEFINE_string("protocol", "pooled", "pooled or official.")
    flags.DEFINE_string("profile", "cpu", "Our budget profile: "
                        "experiments/ganomaly_<dataset>_<profile>.json.")
    flags.DEFINE_integer("threads", 1, "torch threads of each peer cell (our cpu cells: 1 TF "
                         "thread).")
    flags.DEFINE_integer("workers", 2, "Peer cells trained at once (our cpu grid: 2 workers).")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz.")
    flags.DEFINE_string("results_dir", PEER_RESULTS, "Where the peer's cells go.")


def cell_path(results_dir, protocol, dataset, profile, k, seed):
    return os.path.join(results_dir, protocol, dataset, f"{PEER_MODEL}_{profile}",
                        f"class{k}_seed{seed}")


def budget(dataset, profile):
    """Our cell's resolved config, and the peer's arguments for the same budget and widths:
    anomalib's encoder starts at `n_features` and doubles per block, so ours must too."""
    from anomaly_toolbox import config as config_lib
    from anomaly_toolbox import models
    from anomaly_toolbox.errors import UsageError

    path = os.path.join(EXPERIMENTS, f"{OURS}_{dataset}_{profile}.json")
    if not os.path.exists(path):
        raise UsageError("profile", profile, f"a profile with a file {path}")
    cfg = config_lib.resolve(models.get(OURS), path)
    m, width = cfg["model"], cfg["model"]["filters"][0]
    if m["filters"] != [width * 2 ** i for i in range(len(m["filters"]))] or len(m["filters"]) != 3:
        raise UsageError("profile", profile, "filters w, 2w, 4w (anomalib's widths at 32x32)")
    args = [f"--epochs={cfg['epochs']}", f"--batch_size={cfg['batch_size']}",
            f"--n_features={width}", f"--latent={m['latent_dim']}",
            f"--weights={m['w_adv']:g},{m['w_con']:g},{m['w_enc']:g}",
            f"--lr={m['learning_rate']:g}", f"--beta1={m['beta_1']:g}"]
    return cfg, args


def cell_splits(dataset, k, protocol, data_dir):
    """The Splits our cell of (dataset, k, protocol) trains and evaluates on: the benchmark never
    passes --split_seed, so it is training's default."""
    from anomaly_toolbox.data import load_splits
    from anomaly_toolbox.run.spec import RunSpec

    split_seed = RunSpec.__dataclass_fields__["split_seed"].default
    return load_splits(dataset, k, protocol, split_seed, data_dir), split_seed


def peer_inputs(splits, chunk=8192):
    """{x_train, x_val, x_test}: our model input (to_model_input, NHWC) as NCHW float32, for
    torch."""
    from anomaly_toolbox.data.preprocessing import to_model_input

    def nchw(images):
        parts = [to_model_input(images[i:i + chunk], pad=splits.padded).numpy()
                 for i in range(0, len(images), chunk)]
        return np.ascontiguousarray(np.concatenate(parts).transpose(0, 3, 1, 2))
    return {"x_train": nchw(splits.x_train), "x_val": nchw(splits.x_val),
            "x_test": nchw(splits.x_test)}


def select(val_scores, y_val):
    """Our training's rule on the peer's per-epoch validation scores: the epoch with the highest
    validation AUPRC, the first on ties (strictly better replaces). Test scores are not an
    argument: selection cannot read them. Returns (1-based epoch, per-epoch validation metrics)."""
    from anomaly_toolbox import metrics
    from benchmarks.budget_curve import selected_epoch

    per_epoch = [metrics.ranking_metrics(s, y_val) for s in val_scores]
    epoch = selected_epoch([{"epoch": e, "val_auprc": m["auprc"]}
                            for e, m in enumerate(per_epoch, 1)])
    return epoch, per_epoch


def result_of(scores, splits, epoch):
    """Validation and test metrics of the selected epoch, as our cells report them (threshold:
    F1-optimal on validation), and that epoch's scores."""
    from anomaly_toolbox import metrics

    val, test = scores["val_scores"][epoch - 1], scores["test_scores"][epoch - 1]
    threshold = metrics.validation_threshold(val, splits.y_val, "f1")
    return {"validation": metrics.evaluate(val, splits.y_val, threshold),
            "test": metrics.evaluate(test, splits.y_test, threshold)}, val, test


def run_cell(dataset, k, seed, cfg, peer_args, command):
    from anomaly_toolbox.files import write_json
    from anomaly_toolbox.run import provenance
    from benchmarks.benchmark import keep_scores

    target = cell_path(FLAGS.results_dir, FLAGS.protocol, dataset, FLAGS.profile, k, seed)
    if os.path.exists(target + ".json"):
        return f"{target}: skipped (done)"
    started = time.time()
    splits, split_seed = cell_splits(dataset, k, FLAGS.protocol, FLAGS.data_dir)
    with tempfile.TemporaryDirectory(prefix="peer-quality-") as tmp:
        np.savez(os.path.join(tmp, "inputs.npz"), **peer_inputs(splits))
        out = subprocess.run(
            [FLAGS.peer_python, PEER_SCRIPT, f"--inputs={tmp}/inputs.npz",
             f"--output={tmp}/scores.npz", f"--seed={seed}", f"--threads={FLAGS.threads}",
             *peer_args], capture_output=True, text=True,
            env=child_env(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(FLAGS.threads)))
        if out.returncode:
            return f"{target}: FAILED (exit {out.returncode})\n{out.stderr[-3000:]}"
        with np.load(os.path.join(tmp, "scores.npz")) as f:
            scores = {k_: f[k_] for k_ in f.files}
    meta = json.loads(str(scores["meta"]))
    epoch, per_epoch = select(scores["val_scores"], splits.y_val)
    metrics_, val, test = result_of(scores, splits, epoch)
    history = [{**h, "val_auprc": m["auprc"], "val_auroc": m["auroc"]}
               for h, m in zip(meta["history"], per_epoch)]
    ours = provenance.versions()
    result = {
        "peer": "anomalib", "model": PEER_MODEL, "pairs_with": OURS, "dataset": dataset,
        "anomalous_class": k, "protocol": FLAGS.protocol, "train_seed": seed,
        "split_seed": split_seed, "limit": None, "splits": splits.counts(),
        "config": {**{key: cfg[key] for key in ("profile", "epochs", "batch_size")},
                   "model": cfg["model"], "peer_args": peer_args},
        "selected_epoch": epoch, "validation": metrics_["validation"], "test": metrics_["test"],
        "history": history, "command": command, "peer_threads": meta["threads"],
        "wall_time_s": {"train": round(sum(h["train_s"] for h in meta["history"]), 1),
                        "score": round(sum(h["val_score_s"] + h["test_score_s"]
                                           for h in meta["history"]), 1),
                        "total": round(time.time() - started, 1)},
        "versions": {**meta["versions"], "machine": ours["machine"],
                     "git_commit": ours["git_commit"], "driver_numpy": np.__version__,
                     "scikit-learn": ours["scikit-learn"], "tensorflow": ours["tensorflow"]}}
    keep_scores({"val_scores": val, "val_labels": splits.y_val, "test_scores": test,
                 "test_labels": splits.y_test}, target)
    write_json(target + ".json", result)  # last: its presence marks the cell done
    return (f"{target}: done in {result['wall_time_s']['total']:.0f}s, epoch {epoch}, test "
            f"AUPRC {result['test']['auprc']:.4f} AUROC {result['test']['auroc']:.4f}")


def body():
    from anomaly_toolbox.data.datasets import DATASETS
    from anomaly_toolbox.data.protocols import PROTOCOLS
    from anomaly_toolbox.errors import UsageError
    from benchmarks.benchmark import parse_classes

    if not FLAGS.peer_python or not os.access(FLAGS.peer_python, os.X_OK):
        raise UsageError("peer_python", FLAGS.peer_python, "the python of a venv with anomalib")
    for dataset in FLAGS.datasets:
        if dataset not in DATASETS:
            raise UsageError("datasets", dataset, f"one of {', '.join(DATASETS)}")
    if FLAGS.protocol not in PROTOCOLS:
        raise UsageError("protocol", FLAGS.protocol, f"one of {', '.join(PROTOCOLS)}")
    for name in ("threads", "workers"):
        if FLAGS[name].value <= 0:
            raise UsageError(name, FLAGS[name].value, "a positive integer")
    try:
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError as e:
        raise UsageError("seeds", ",".join(FLAGS.seeds), "integers like 0,1,2") from e
    classes = parse_classes(FLAGS.classes)
    budgets = {d: budget(d, FLAGS.profile) for d in FLAGS.datasets}
    command = ("python -m benchmarks.peer_quality --peer_python=PEER/bin/python "
               f"--datasets={','.join(FLAGS.datasets)} --classes={FLAGS.classes} "
               f"--seeds={','.join(FLAGS.seeds)} --protocol={FLAGS.protocol} "
               f"--profile={FLAGS.profile} --threads={FLAGS.threads} --workers={FLAGS.workers} "
               "--data_dir=../shared/data")
    cells = [(d, k, s) for s in seeds for d in FLAGS.datasets for k in classes]  # seed by seed
    with ThreadPoolExecutor(FLAGS.workers) as pool:
        for line in pool.map(lambda c: run_cell(*c, *budgets[c[0]], command), cells):
            print(line, flush=True)


if __name__ == "__main__":
    cli.main(define_flags, body)
