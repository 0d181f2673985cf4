"""Threshold-free metrics on raw scores, and a threshold chosen on validation only."""

import re

import numpy as np


def ranking_metrics(scores, labels):
    """AUPRC (average precision, anomaly = positive) and AUROC; higher score = more anomalous."""
    from sklearn.metrics import average_precision_score, roc_auc_score  # 1 s: not for parse_threshold

    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{np.sum(~np.isfinite(scores))} scores are NaN or infinite")
    return {"auprc": float(average_precision_score(labels, scores)),
            "auroc": float(roc_auc_score(labels, scores))}


def best_f1_threshold(scores, labels):
    """The score threshold maximizing F1; call it on validation data, never on test."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


class Threshold(float):
    """A score threshold that remembers the rule that chose it ("f1" or "fpr:RATE"), so the
    SavedModel and results.json can say how it was chosen."""

    def __new__(cls, value, rule):
        threshold = super().__new__(cls, value)
        threshold.rule = rule
        return threshold


FALLBACK_FPR = 0.01  # the rule "f1" applies without validation anomalies


_RATE = re.compile(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_threshold(rule, argument="threshold"):
    """("f1", None) or ("fpr", rate) from a threshold rule ("f1" or "fpr:RATE"): the one parser
    of it; anything else is a UsageError naming `argument`."""
    from anomaly_toolbox.errors import UsageError

    if rule == "f1":
        return "f1", None
    kind, _, rate = str(rule).partition(":")
    # a plain decimal only: float() also takes " 0.5 ", "0_5" and "5e-1_0", which f1 never did
    rate = float(rate) if _RATE.fullmatch(rate) else None
    if kind != "fpr" or rate is None or not 0 < rate < 1:
        raise UsageError(argument, rule, "f1 or fpr:RATE with 0 < RATE < 1, e.g. fpr:0.01")
    return "fpr", rate


def applied_rule(rule, labelled):
    """The rule as validation_threshold applies it to validation with (`labelled`) or without
    anomalies: "f1" needs anomalies and falls back to fpr:0.01."""
    kind, rate = parse_threshold(rule)
    return "f1" if kind == "f1" and labelled else f"fpr:{rate or FALLBACK_FPR!r}"


def recorded_rule(validation):
    """The rule a run applied, from its results' validation metrics (see `target`)."""
    rate = validation.get("threshold_target_fpr")
    return "f1" if rate is None else f"fpr:{float(rate)!r}"  # every digit: 0.0100001 is not 0.01


def other_rule(validation, rule):
    """The rule a finished run (or ensemble) applied, read from its validation metrics, when
    `rule` would apply another to the same validation; None when they agree."""
    kept = recorded_rule(validation)
    return kept if applied_rule(rule, "auprc" in validation) != kept else None


def threshold_said(threshold, asked):
    """"val threshold T", and the rule that chose T when it is not the one `asked` (f1 without
    validation anomalies): a fallback said in the final line, not only in results.json."""
    said = f"val threshold {threshold:.4g}"
    if threshold.rule != asked and parse_threshold(asked)[0] == "f1":
        said += (f", {threshold.rule}: validation holds no anomalies, so --threshold=f1 "
                 f"could not be applied")
    return said


def threshold_metrics(scores, labels, threshold):
    predicted = np.asarray(scores) >= threshold
    labels = np.asarray(labels).astype(bool)
    tp = float(np.sum(predicted & labels))
    precision = tp / max(float(predicted.sum()), 1.0)
    recall = tp / max(float(labels.sum()), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"threshold": float(threshold), **target(threshold), "precision": precision,
            "recall": recall, "f1": f1}


def target(threshold):
    """{"threshold_target_fpr": RATE} for an fpr:RATE threshold: numeric, so results.json and
    TensorBoard can both hold it; nothing for the default F1-optimal one."""
    kind, rate = parse_threshold(getattr(threshold, "rule", "f1"))
    return {"threshold_target_fpr": rate} if kind == "fpr" else {}


def non_finite(scores, what, epoch):
    """A message like the NaN-loss one if any score is NaN/inf (metrics cannot rank those)."""
    bad = int(np.sum(~np.isfinite(scores)))
    return f"{what} scores became NaN/inf in epoch {epoch} ({bad} of {len(scores)})" if bad else None


def has_both_classes(labels):
    return 0 < int(np.sum(labels)) < len(labels)


def validation_metrics(scores, labels):
    """Ranking metrics when validation has anomalies; otherwise what can be said of normals."""
    if has_both_classes(labels):
        return ranking_metrics(scores, labels)
    return {"mean_normal_score": float(np.mean(scores))}


def validation_threshold(scores, labels, rule="f1"):
    """F1-optimal on labelled validation (rule "f1"), or the score that a RATE share of the
    validation normals exceed (rule "fpr:RATE": a target false-alarm rate). Without validation
    anomalies "f1" cannot be computed and falls back to fpr:0.01."""
    kind, rate = parse_threshold(rule)
    scores, labels = np.asarray(scores), np.asarray(labels)
    if kind == "f1" and has_both_classes(labels):
        return Threshold(best_f1_threshold(scores, labels), "f1")
    return Threshold(np.quantile(scores[labels == 0], 1 - (rate or FALLBACK_FPR)),
                     applied_rule(rule, labelled=False))


def evaluate(scores, labels, threshold=None):
    result = validation_metrics(scores, labels) if len(labels) else {}
    if threshold is not None and len(labels):
        result.update(threshold_metrics(scores, labels, threshold))
    return result
