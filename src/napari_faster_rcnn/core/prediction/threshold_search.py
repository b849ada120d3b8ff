"""The search behind :func:`~napari_faster_rcnn.core.prediction.calibration.calibrate`: the best
score threshold per class over ranked detections, for one NMS value at a time.

``calibrate`` reads the ground truth and the raw detections into flat arrays, finds the matches
and the NMS survivors, and hands this module the orders it made once (with :func:`score_ranking`
and :func:`order_by`): ``"rank"`` (best first), ``"key"`` (by image and class), ``"class"`` (by
class) and ``"found"`` (by box found), best first within each group, and ``"cuts"``
(:func:`cut_points`). Given the survivors of one NMS value, :func:`objective_value` gives the
objective (macro F1 or the total count error) at every class's best threshold from running sums read
at the ends of runs of equal scores, for all classes at once; :func:`best_per_class` makes the same
choice class by class, with every statistic, the common threshold and the micro F1. Ties go to the
higher score threshold (fewer boxes); a chosen threshold lies halfway between the score of the last
detection kept and the next lower score.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["best_per_class", "cut_points", "objective_value", "order_by", "score_ranking"]


def best_per_class(objective, kept, orders, scores, dt, key, best_gt, gt_key_counts, gt_counts, with_truth,
                   n_classes, final=True) -> dict:
    """Every class's best threshold over the survivors ``kept`` of one NMS value, and (``final``) the
    common one and every statistic; without ``final``, only what the objective needs."""
    true_positive = _true_positives(kept, orders, best_gt, len(scores))
    if final or objective == "count":
        change = _count_changes(kept, orders, key, gt_key_counts, len(scores))
    else:
        change = np.zeros(len(scores), dtype=np.int64)  # not needed for the choice

    classes = dt["classes"]
    by_class = orders["class"][kept[orders["class"]]]  # by class, best first within each
    bounds = np.searchsorted(classes[by_class], np.arange(n_classes + 1), side="left")
    result = {"thresholds": {}, "per_class": {}}
    values = []
    for k in with_truth:
        members = by_class[bounds[k]:bounds[k + 1]]
        chosen = _best_cut(objective, scores[members], true_positive[members], change[members], int(gt_counts[k]))
        result["thresholds"][k] = chosen["threshold"]
        result["per_class"][k] = chosen["stats"]
        values.append(chosen["value"])
    result["value"] = float(np.mean(values)) if objective == "f1" else float(np.sum(values))
    if not final:
        return result
    # one threshold for all classes with ground truth together
    order = orders["rank"][kept[orders["rank"]]]  # survivors, best first
    common = order[np.isin(classes[order], with_truth)]
    pooled = _best_cut(objective, scores[common], true_positive[common], change[common], int(gt_counts.sum()))
    result["common"] = pooled["threshold"]
    total_tp = sum(stats["true_positives"] for stats in result["per_class"].values())
    total_kept = sum(stats["predictions"] for stats in result["per_class"].values())
    result["micro_f1"] = 2 * total_tp / (total_kept + int(gt_counts.sum()))
    return result


def _true_positives(kept, orders, best_gt, n) -> np.ndarray:
    """Which survivors are true positives: the first survivor (in rank order) that finds a box takes it."""
    candidate = orders["found"][kept[orders["found"]]]  # by box found, best first
    found_box = best_gt[candidate]
    true_positive = np.zeros(n, dtype=bool)
    if len(candidate):
        true_positive[candidate[np.r_[True, found_box[1:] != found_box[:-1]]]] = True
    return true_positive


def _count_changes(kept, orders, key, gt_key_counts, n) -> np.ndarray:
    """What each survivor adds to the count error: 1 beyond the true count of its image and class, else -1."""
    by_key = orders["key"][kept[orders["key"]]]  # by image and class, best first
    key_sorted = key[by_key]
    position = np.arange(len(by_key))
    starts = np.r_[True, key_sorted[1:] != key_sorted[:-1]] if len(key_sorted) else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(starts, position, 0)) if len(position) else position
    within = np.empty(n, dtype=np.int64)
    within[by_key] = position - group_start
    return np.where(within >= gt_key_counts[key], 1, -1)


def cut_points(orders, scores, classes, gt_counts) -> dict:
    """Where a class's ranked list can be cut, made once for :func:`objective_value`.

    In the class order (by class, best first), a threshold keeps every detection of a score or
    none: the cuts lie after the last detection of each run of equal scores. The running counts
    of survivors at a run's end are those at its last survivor, or, when the run has none, those
    of an earlier cut, so the best over the ends of the runs is the best over the cuts, whichever
    detections survive NMS. Only classes with ground truth are kept.
    """
    by_class = orders["class"]
    group, ordered = classes[by_class], scores[by_class]
    ends = np.flatnonzero(np.r_[(group[1:] != group[:-1]) | (ordered[1:] != ordered[:-1]), True][:len(group)])
    ends = ends[gt_counts[group[ends]] > 0]
    end_class = group[ends]
    segments = np.flatnonzero(np.r_[True, end_class[1:] != end_class[:-1]]) if len(ends) else np.zeros(0, np.int64)
    return {
        "ends": ends,
        "class_start": np.searchsorted(group, end_class, side="left"),
        "truth": gt_counts[end_class],
        "segments": segments,
        "present": end_class[segments],
    }


def objective_value(objective, kept, orders, scores, dt, key, best_gt, gt_key_counts, gt_counts, with_truth,
                    n_classes) -> float:
    """The objective at every class's best threshold over the survivors ``kept`` of one NMS value:
    ``best_per_class(...)["value"]``, the same numbers, computed for all classes at once over the
    cuts of :func:`cut_points`."""
    n = len(scores)
    cuts = orders["cuts"]
    by_class = orders["class"]
    survives = kept[by_class]
    if objective == "f1":
        step = _true_positives(kept, orders, best_gt, n)[by_class]  # only survivors are true positives
    else:
        step = _count_changes(kept, orders, key, gt_key_counts, n)[by_class] * survives
    running = np.r_[0, np.cumsum(step, dtype=np.int64)]
    taken = np.r_[0, np.cumsum(survives, dtype=np.int64)]
    ends, start = cuts["ends"] + 1, cuts["class_start"]
    within = running[ends] - running[start]
    count = taken[ends] - taken[start]
    if objective == "f1":
        best = np.zeros(n_classes)  # the cut that keeps nothing: F1 0
        if len(ends):
            best[cuts["present"]] = np.maximum.reduceat(2 * within / (count + cuts["truth"]), cuts["segments"])
        return float(np.mean(best[with_truth]))
    best = gt_counts.astype(np.float64)  # the cut that keeps nothing: every true box missed
    if len(ends):
        error = np.minimum.reduceat((cuts["truth"] + within).astype(np.float64), cuts["segments"])
        best[cuts["present"]] = np.minimum(best[cuts["present"]], error)
    return float(np.sum(best[with_truth]))


def score_ranking(scores) -> np.ndarray:
    """``np.argsort(-scores, kind="stable")`` (descending, ties in index order) from the quicker
    unstable sort, with only the runs of equal scores put in index order afterwards."""
    order = np.argsort(-scores)
    ordered = scores[order]
    if len(ordered) and not np.isfinite(ordered).all():
        return np.argsort(-scores, kind="stable")
    tie = ordered[1:] == ordered[:-1]
    if tie.any():
        tied = np.flatnonzero(np.r_[tie, False] | np.r_[False, tie])
        run = np.cumsum(np.r_[True, ~tie])[tied]
        order[tied] = order[tied][np.lexsort((order[tied], run))]
    return order


def order_by(values, rank, n, ranked=None) -> np.ndarray:
    """The positions of ``values`` (integers) sorted by value, ties by ``rank`` (distinct integers
    below ``n``); ``ranked``, when given, is ``np.argsort(rank)``."""
    values = np.asarray(values, dtype=np.int64)
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    low = int(values.min())
    span = int(values.max()) - low + 1
    if ranked is not None and span <= 2**15:  # a stable radix sort of 16-bit numbers, taken in rank order
        return ranked[np.argsort((values[ranked] - low).astype(np.int16), kind="stable")]
    if span * n < 2**62:  # one number per position: (value, rank) without a two-key sort
        return np.argsort((values - low) * n + rank)
    return np.lexsort((rank, values))


def _best_cut(objective, scores, true_positive, change, truth) -> dict:
    """The best place to cut one ranked list (best first): its threshold, objective value and statistics.

    Only cuts between different scores are possible (a threshold keeps every
    detection of a score or none). Cut 0 keeps nothing.
    """
    tp = np.concatenate([[0], np.cumsum(true_positive)])
    error = truth + np.concatenate([[0], np.cumsum(change)])
    kept = np.arange(len(scores) + 1)
    # cuts after position i keep i detections; allowed where the next score is lower (or at the end)
    allowed = np.ones(len(scores) + 1, dtype=bool)
    allowed[1:-1] = scores[1:] < scores[:-1]
    f1 = 2 * tp / (kept + truth)
    value = f1 if objective == "f1" else error
    candidates = np.flatnonzero(allowed)
    pick = candidates[np.argmax(value[candidates]) if objective == "f1" else np.argmin(value[candidates])]
    if pick == 0:
        threshold = min(1.0, float(np.nextafter(scores[0], np.inf))) if len(scores) else 1.0
    elif pick == len(scores):
        threshold = float(scores[-1])
    else:
        threshold = float((scores[pick - 1] + scores[pick]) / 2)
        if not scores[pick] < threshold <= scores[pick - 1]:  # too close to halve
            threshold = float(scores[pick - 1])
    hits, count = int(tp[pick]), int(pick)
    return {
        "threshold": threshold,
        "value": float(value[pick]),
        "stats": {
            "score_threshold": threshold,
            "f1": float(f1[pick]),
            "precision": hits / count if count else math.nan,
            "recall": hits / truth if truth else math.nan,
            "true_positives": hits,
            "predictions": count,
            "ground_truth": truth,
            "count_error": int(error[pick]),
        },
    }
