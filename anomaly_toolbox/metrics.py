"""Threshold-free metrics on raw scores, and a threshold chosen on validation only."""

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def ranking_metrics(scores, labels):
    """AUPRC (average precision, anomaly = positive) and AUROC; higher score = more anomalous."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{np.sum(~np.isfinite(scores))} scores are NaN or infinite")
    return {"auprc": float(average_precision_score(labels, scores)),
            "auroc": float(roc_auc_score(labels, scores))}


def best_f1_threshold(scores, labels):
    """The score threshold maximizing F1; call it on validation data, never on test."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def threshold_metrics(scores, labels, threshold):
    predicted = np.asarray(scores) >= threshold
    labels = np.asarray(labels).astype(bool)
    tp = float(np.sum(predicted & labels))
    precision = tp / max(float(predicted.sum()), 1.0)
    recall = tp / max(float(labels.sum()), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1}


def has_both_classes(labels):
    return 0 < int(np.sum(labels)) < len(labels)


def validation_metrics(scores, labels):
    """Ranking metrics when validation has anomalies; otherwise what can be said of normals."""
    if has_both_classes(labels):
        return ranking_metrics(scores, labels)
    return {"mean_normal_score": float(np.mean(scores))}


def validation_threshold(scores, labels, normal_quantile=0.99):
    """F1-optimal on labelled validation; without anomalies, the score that 1 % of held-out
    normal images exceed."""
    if has_both_classes(labels):
        return best_f1_threshold(scores, labels)
    return float(np.quantile(scores, normal_quantile))


def evaluate(scores, labels, threshold=None):
    result = validation_metrics(scores, labels) if len(labels) else {}
    if threshold is not None and len(labels):
        result.update(threshold_metrics(scores, labels, threshold))
    return result
