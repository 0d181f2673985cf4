"""benchmarks.md's "Quality beside the peer": anomalib's GANomaly cells (`peer_quality.py`) paired
with our `ganomaly` cells of the same protocol, dataset, profile, class and seed.

Pairs are (class, seed) cells; the two-sided Wilcoxon signed-rank test is claims.paired's over
classes, each the mean of its paired seeds on both sides, as the grid's comparisons count them:
a class's seeds are repeats of one case, and counting them as more cases would shrink p. A pair
whose split sizes differ is not a pair: it is counted and named instead.
"""

import glob
import json
import os

import numpy as np

from benchmarks import claims
from benchmarks.cells import CLASSES, hardware, wall_seconds

OURS, PEER = "ganomaly", "anomalib_ganomaly"
FOLDER = "peer_quality"  # the peer's cells, inside the results folder
METRICS = (("auprc", "AUPRC"), ("auroc", "AUROC"))
# What differs, read from both codes (anomalib 2.7.0's models/image/ganomaly/, our
# models/ganomaly.py and blocks.py); numbers never enter it.
DIFFERENCES = [
    "Adversarial loss of the generator: anomalib's `GeneratorLoss` takes the MSE between the "
    "discriminator's sigmoid outputs on the real and the reconstructed batch; ours is the paper's "
    "feature matching, the mean squared difference of the discriminator's 4x4 feature maps. "
    "The discriminator's loss is the same BCE (anomalib's on sigmoid outputs, ours on logits).",
    "Initialisation: anomalib's `GanomalyModel` calls `weights_init(self.generator)` and "
    "`weights_init(self.discriminator)` on the two containers, not through `.apply`, so no "
    "layer matches its `Conv`/`BatchNorm` test and PyTorch's default init stays (Kaiming-uniform "
    "convolutions: weight std 0.013 to 0.15 at the `cpu` widths; BatchNorm scale exactly 1); "
    "ours is DCGAN's N(0, 0.02) on every convolution, BatchNorm scale 1.",
    "Padding: the first convolution of anomalib's two encoders and discriminator pads by 4, so "
    "32x32 runs 19 -> 9 -> 4 before the 4x4 latent convolution; ours pads `same`, "
    "32 -> 16 -> 8 -> 4. The decoders match (4 -> 8 -> 16 -> 32).",
    "Biases: anomalib's convolutions have none; ours has one on the decoder's last (tanh) "
    "layer and on the discriminator's logit layer.",
    "BatchNorm: PyTorch's momentum 0.1 and epsilon 1e-5 against Keras' 0.99 and 1e-3 (running "
    "statistics average over about 10 against about 100 steps); both score with running "
    "statistics. anomalib runs the discriminator three times a step (real, fake, detached fake), "
    "ours twice; the discriminator's statistics do not enter the score.",
    "Step: anomalib updates the generator, then the discriminator on the same (detached) "
    "reconstruction; ours takes both gradients from one forward pass: the same gradients. "
    "Adam epsilon 1e-8 (PyTorch) against 1e-7 (Keras). Batch order: each side's own shuffle, "
    "seeded by the training seed.",
    "Input: anomalib's Lightning module always builds 3 input channels (its data modules load "
    "RGB); here its torch model takes our 1-channel 32x32 input, as our model does.",
    "Score: both take the mean squared difference of the two latent codes, in eval mode. "
    "anomalib's Lightning module also min-max rescales scores per split, which changes no "
    "ranking and is not applied here.",
]


def load(results_dir):
    """The peer's cells in `results_dir` (the peer_quality folder), any depth."""
    rows = []
    for path in sorted(glob.glob(os.path.join(results_dir, "**", "class*_seed*.json"),
                                 recursive=True)):
        with open(path) as f:
            r = json.load(f)
        if r.get("peer"):
            rows.append(r)
    return rows


def _key(r):
    return (r["protocol"], r["dataset"], r["config"].get("profile"), r["anomalous_class"],
            r["train_seed"])


def pairs(rows, peers):
    """{(protocol, dataset, profile): {(class, seed): (ours, peer)}}, and the mismatched keys."""
    ours = {_key(r): r for r in rows if r["model"] == OURS and not r.get("limit")}
    out, mismatched = {}, []
    for p in peers:
        mine = ours.get(_key(p))
        if mine is None:
            continue
        if mine["splits"] != p["splits"]:
            mismatched.append(_key(p))
            continue
        out.setdefault(_key(p)[:3], {})[_key(p)[3:]] = (mine, p)
    return out, mismatched


def paired_test(cells, metric):
    """claims.paired over classes, each the mean of its paired seeds: ours − anomalib."""
    by_cell = {}
    for (k, _), (mine, theirs) in sorted(cells.items()):
        by_cell.setdefault((OURS, k), []).append(mine["test"])
        by_cell.setdefault((PEER, k), []).append(theirs["test"])
    return claims.paired(by_cell, sorted({k for k, _ in cells}), a=OURS, b=PEER, metric=metric)


def _class_rows(cells):
    lines = []
    for k in CLASSES:
        at = [v for (c, _), v in sorted(cells.items()) if c == k]
        if not at:
            continue
        cols = []
        for metric, _ in METRICS:
            peer = np.mean([t["test"][metric] for _, t in at])
            mine = np.mean([m["test"][metric] for m, _ in at])
            cols += [f"{peer:.3f}", f"{mine:.3f}", f"{mine - peer:+.3f}"]
        seeds = ",".join(str(s) for (c, s) in sorted(cells) if c == k)
        lines.append(f"| {k} | {seeds} | " + " | ".join(cols) + " |")
    return lines


def _peer_seconds(cell):
    return cell["wall_time_s"]["train"] + cell["wall_time_s"]["score"]


def _minutes(values):
    return f"{min(values) / 60:.1f} / {np.median(values) / 60:.1f} / {max(values) / 60:.1f} min"


def section(rows, peers=()):
    """Markdown; empty until a peer cell has a partner among our cells."""
    groups, mismatched = pairs(rows, peers)
    if not groups:
        return ""
    paired = [t for cells in groups.values() for _, t in cells.values()]
    commands = "; ".join(f"`{c}`" for c in sorted({t["command"] for t in paired}))
    versions = "; ".join(sorted({f"anomalib {t['versions']['anomalib']}, torch "
                                 f"{t['versions']['torch']}, {t['peer_threads']} thread(s) per "
                                 "cell" for t in paired}))
    lines = ["## Quality beside the peer: anomalib's GANomaly and ours", "",
             f"Commands: {commands}. {versions}, OMP_WAIT_POLICY=PASSIVE; ours: the "
             "committed `ganomaly` cells. The peer trains on the split our cell of the same class "
             "and seed trains on (the package's `load_splits` and `to_model_input`, 32x32 in "
             "[-1, 1]), at our profile's budget and widths (anomalib's `n_features` = our first "
             "width, doubled per block), with its own networks, losses, init and training step; "
             "its epoch is chosen as ours (best validation AUPRC, first on ties) and tested "
             "with our metric functions. Test metrics; Δ = ours − anomalib; pairs are "
             "(class, seed); the two-sided Wilcoxon signed-rank test is over classes, each the "
             f"mean of its seeds (as in the grid's comparisons), significant at p < {claims.ALPHA}.",
             ""]
    for (protocol, dataset, profile), cells in sorted(groups.items()):
        lines += [f"### {dataset}, {protocol}, `{profile}`", "",
                  "| class | seeds | anomalib AUPRC | ours AUPRC | Δ AUPRC | anomalib AUROC | "
                  "ours AUROC | Δ AUROC |", "|---" * 8 + "|", *_class_rows(cells)]
        lines.append("")
        for metric, name in METRICS:
            test = paired_test(cells, metric)
            mean_peer = np.mean([t["test"][metric] for _, t in cells.values()])
            mean_ours = np.mean([m["test"][metric] for m, _ in cells.values()])
            lines.append(f"- Test {name} over {test['n']} classes ({len(cells)} class-seed "
                         f"pairs): anomalib {mean_peer:.3f}, ours "
                         f"{mean_ours:.3f}, mean Δ {np.mean(test['diffs']):+.3f}; ours higher "
                         f"in {test['a_wins']} classes, anomalib's in {test['b_wins']}; Wilcoxon: "
                         f"{claims.verdict(test, 'ours', 'anomalib')}.")
        peer_cells = [t for _, t in cells.values()]
        epochs = [t["selected_epoch"] for t in peer_cells]
        lines += ["- anomalib's selected epoch: " + ", ".join(
                      f"{e} in {epochs.count(e)}" for e in sorted(set(epochs))) + " pairs.",
                  f"- Wall time per cell (min / median / max), train + scoring: anomalib "
                  f"{_minutes([_peer_seconds(t) for t in peer_cells])} "
                  f"(peer: {hardware(peer_cells)}); ours "
                  f"{_minutes([wall_seconds(m) for m, _ in cells.values()])}. The two sides ran "
                  "in different sessions, under different load: not a speed comparison (that is "
                  "\"Speed beside the peer\").", ""]
    if mismatched:
        lines += [f"Not paired, split sizes differ: {', '.join(map(str, mismatched))}.", ""]
    lines += ["What differs between the two implementations (from their code):", "",
              *(f"- {d}" for d in DIFFERENCES), ""]
    return "\n".join(lines)
