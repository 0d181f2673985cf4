"""Per-run PNG figures: PR / ROC curves, score histograms with the validation threshold, and the
highest- and lowest-scored test images with reconstructions and anomaly maps."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from anomaly_toolbox.files import write_atomic


def _save(fig, path):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    write_atomic(path, buffer.getvalue(), "wb")
    return buffer.getvalue()


def curves(scores, labels, path):
    precision, recall, _ = precision_recall_curve(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.6))
    a.plot(recall, precision)
    a.axhline(np.mean(labels), ls="--", c="gray", label="chance")
    a.set(xlabel="recall", ylabel="precision", title="test PR curve", xlim=(0, 1), ylim=(0, 1.02))
    a.legend()
    b.plot(fpr, tpr)
    b.plot([0, 1], [0, 1], ls="--", c="gray")
    b.set(xlabel="false positive rate", ylabel="true positive rate", title="test ROC curve")
    fig.tight_layout()
    return _save(fig, path)


def histogram(scores, labels, threshold, path):
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.histogram_bin_edges(scores, 50)
    ax.hist(scores[labels == 0], bins, alpha=0.6, label="normal", density=True)
    ax.hist(scores[labels == 1], bins, alpha=0.6, label="anomalous", density=True)
    ax.axvline(threshold, c="k", ls="--", label="validation threshold")
    ax.set(xlabel="anomaly score (raw)", ylabel="density", title="test scores")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def extremes(images, scores, labels, reconstructions, path, n=8):
    """Rows: input, reconstruction, |input - reconstruction|, for the n highest and n lowest."""
    order = np.argsort(scores)
    picks = np.concatenate([order[::-1][:n], order[:n]])
    rows = 3 if reconstructions is not None else 1
    fig, axes = plt.subplots(rows, 2 * n, figsize=(2 * n * 0.9, rows * 1.1), squeeze=False)
    for col, i in enumerate(picks):
        panels = [images[i]]
        if reconstructions is not None:
            panels += [reconstructions[i], np.abs(images[i] - reconstructions[i])]
        for row, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel[..., 0] if panel.shape[-1] == 1 else (panel + 1) / 2,
                      cmap="gray" if row < 2 else "inferno", vmin=-1 if row < 2 else 0, vmax=1 if row < 2 else 2)
            ax.set_xticks([]), ax.set_yticks([])
        axes[0, col].set_title(f"{scores[i]:.3g}\n{'anom' if labels[i] else 'norm'}", fontsize=6)
    axes[0, 0].set_ylabel("input", fontsize=7)
    if reconstructions is not None:
        axes[1, 0].set_ylabel("recon", fontsize=7)
        axes[2, 0].set_ylabel("|diff|", fontsize=7)
    fig.suptitle(f"{n} highest (left) and {n} lowest (right) scored test images", fontsize=8)
    return _save(fig, path)


def write_all(run_dir, model, x_test, test_scores, test_labels, threshold):
    """Writes the three figures into a RunDir; returns {name: png bytes} for TensorBoard."""
    from anomaly_toolbox.data.preprocessing import to_model_input

    order = np.argsort(test_scores)
    picks = np.concatenate([order[::-1][:8], order[:8]])
    x = to_model_input(x_test[picks]).numpy()
    recon = model.reconstruct(x).numpy() if hasattr(model, "reconstruct") else None
    return {
        "curves": curves(test_scores, test_labels, run_dir.figure("curves")),
        "histogram": histogram(test_scores, test_labels, threshold,
                               run_dir.figure("histogram")),
        "extremes": extremes(x, test_scores[picks], test_labels[picks], recon,
                             run_dir.figure("extremes")),
    }
