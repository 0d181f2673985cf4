"""Per-run PNG figures: PR / ROC curves, score histograms with the validation threshold, and the
highest- and lowest-scored test images with reconstructions and anomaly maps."""

import io

import functools

import matplotlib
import numpy as np
from matplotlib.figure import Figure  # no pyplot: a library import must not switch the backend
from sklearn.metrics import precision_recall_curve, roc_curve

from anomaly_toolbox.files import write_atomic

# applied per figure, not to matplotlib's global rcParams (a notebook's or report's own style stays)
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
         "figure.titlesize": 12}


def _styled(draw):
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


def title(identity):
    """"ganomaly, mnist, anomalous class 4" (or the folder) from a run's identity."""
    cls = identity.get("anomalous_class")
    return ", ".join([identity["model"], identity["dataset"]] +
                     ([f"anomalous class {cls}"] if cls is not None else []))


def heading(title, scores, labels):
    """The title followed by the test AUPRC / AUROC, for every figure of a run."""
    from anomaly_toolbox.metrics import ranking_metrics

    m = ranking_metrics(scores, labels)
    return f"{title}{': ' if title else ''}test AUPRC {m['auprc']:.3f}, AUROC {m['auroc']:.3f}"


def _save(fig, path):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    write_atomic(path, buffer.getvalue(), "wb")
    return buffer.getvalue()


@_styled
def curves(scores, labels, path, head=None):
    precision, recall, _ = precision_recall_curve(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    fig = Figure(figsize=(10, 4.6))
    a, b = fig.subplots(1, 2)
    a.plot(recall, precision)
    a.axhline(np.mean(labels), ls="--", c="gray", label="chance")
    a.set(xlabel="recall", ylabel="precision", title="test PR curve", xlim=(0, 1), ylim=(0, 1.02))
    a.legend()
    b.plot(fpr, tpr)
    b.plot([0, 1], [0, 1], ls="--", c="gray")
    b.set(xlabel="false positive rate", ylabel="true positive rate", title="test ROC curve")
    fig.suptitle(head or heading("", scores, labels))
    fig.tight_layout()
    return _save(fig, path)


@_styled
def histogram(scores, labels, threshold, path, head=None):
    fig = Figure(figsize=(8, 4.8))
    ax = fig.subplots()
    bins = np.histogram_bin_edges(scores, 50)
    ax.hist(scores[labels == 0], bins, alpha=0.6, label="normal", density=True)
    ax.hist(scores[labels == 1], bins, alpha=0.6, label="anomalous", density=True)
    ax.axvline(threshold, c="k", ls="--", label="validation threshold")
    ax.set(xlabel="anomaly score (raw)", ylabel="density",
           title=f"test scores\n{head or heading('', scores, labels)}")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


@_styled
def extremes(images, scores, labels, reconstructions, path, n=8, head=""):
    """Rows: input, reconstruction, |input - reconstruction| (with its colour bar), for the n
    highest and n lowest. The error row is a heat map of |x - x^| averaged over channels (what
    the SavedModel's anomaly_map returns), so one colour bar reads every image, grey or RGB."""
    order = np.argsort(scores)
    picks = np.concatenate([order[::-1][:n], order[:n]])
    rows = 3 if reconstructions is not None else 1
    fig = Figure(figsize=(2 * n * 1.1, rows * 1.5 + 1.2))
    axes = fig.subplots(rows, 2 * n, squeeze=False)
    for col, i in enumerate(picks):
        panels = [_picture(images[i])]
        if reconstructions is not None:
            panels += [_picture(reconstructions[i]),
                       np.mean(np.abs(images[i] - reconstructions[i]), axis=-1)]
        for row, panel in enumerate(panels):
            ax = axes[row, col]
            shown = ax.imshow(panel, cmap="gray" if row < 2 else "inferno", vmin=0,
                              vmax=1 if row < 2 else 2)
            ax.set_xticks([]), ax.set_yticks([])
        axes[0, col].set_title(f"{scores[i]:.3g}\n{'anom' if labels[i] else 'norm'}", fontsize=9)
    axes[0, 0].set_ylabel("input", fontsize=10)
    if reconstructions is not None:
        axes[1, 0].set_ylabel("recon", fontsize=10)
        axes[2, 0].set_ylabel("|diff|", fontsize=10)
        fig.colorbar(shown, ax=list(axes[2]), fraction=0.02, pad=0.01, label="|x - x\u0302|")
    fig.suptitle(f"{head + chr(10) if head else ''}{n} highest (left) and {n} lowest "
                 f"(right) scored test images, score and true label above each", fontsize=11)
    return _save(fig, path)


def _picture(image):
    """A model-input image in [-1, 1] as imshow takes it: (H, W) grey or (H, W, 3) RGB in [0, 1]
    (clipped: a reconstruction a hair outside would make matplotlib warn)."""
    picture = np.clip((np.asarray(image, np.float32) + 1) / 2, 0, 1)
    return picture[..., 0] if picture.shape[-1] == 1 else picture


def write_all(run_dir, model, x_test, test_scores, test_labels, threshold, title="",
              padded=True):
    """Writes the three figures into a RunDir, each headed by `title` (model, dataset, class);
    returns {name: png bytes} for TensorBoard."""
    from anomaly_toolbox.data.preprocessing import IMAGE_SIZE, to_model_input

    order = np.argsort(test_scores)
    picks = np.concatenate([order[::-1][:8], order[:8]])
    x = to_model_input(x_test[picks], getattr(model, "image_size", IMAGE_SIZE), padded).numpy()
    head = heading(title, test_scores, test_labels)
    recon = model.reconstruct(x).numpy() if hasattr(model, "reconstruct") else None
    return {
        "curves": curves(test_scores, test_labels, run_dir.figure("curves"), head),
        "histogram": histogram(test_scores, test_labels, threshold,
                               run_dir.figure("histogram"), head),
        "extremes": extremes(x, test_scores[picks], test_labels[picks], recon,
                             run_dir.figure("extremes"), head=head),
    }
