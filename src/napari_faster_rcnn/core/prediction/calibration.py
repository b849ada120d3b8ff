"""Thresholds calibrated on labeled images: the score threshold per class and the NMS IoU
that maximize F1 (or make the predicted counts match the true ones).

Input: raw detections (``predict --raw``: the model's own score threshold and
NMS relaxed) and the ground truth of the same images. For every NMS IoU in
``nms_candidates`` and every score threshold, the detections that pass are
matched to the ground truth as the VOC evaluation matches them (see
:mod:`napari_faster_rcnn.core.evaluation.metrics`): each detection finds the
ground-truth box of its class in its image with the highest IoU; it is a true
positive when that IoU is at least ``iou_threshold`` (0.5) and no detection
scored above it took the box, one prediction per truth.

Objectives
    ``"f1"``: per class, the threshold of the highest F1 = 2 TP / (kept + truth)
    of that class; the NMS IoU of the highest mean of those F1 over the classes
    with ground truth (macro F1).
    ``"count"``: per class, the threshold of the smallest count error, the sum
    over images of ``|kept - truth|`` of that class; the NMS IoU of the smallest
    total error.
    Ties go to the higher score threshold (fewer boxes), and between NMS values
    to the one nearest 0.5.

Why it is fast (one sort, cumulative sums)
    Greedy NMS and the matching both decide a detection from the detections
    scored above it, so neither changes when the detections below a threshold
    are dropped: with NMS applied once per NMS value, a detection's TP/FP status
    is the same at every score threshold that keeps it. Sorting the survivors by
    score once, the running sums of true positives (or of count changes) give
    the objective at every threshold at once. NMS itself is computed for every
    image at once: the overlapping pairs of the same image and class are found
    once (the grid of :func:`~napari_faster_rcnn.core.evaluation.matching.overlapping_pairs`),
    and for each NMS value the "kept / suppressed" decisions spread along those
    pairs in rounds (a box is kept when every better box overlapping it above the
    NMS IoU is suppressed, suppressed when one of them is kept).

Already-thresholded predictions (``predict`` without ``--raw``) can be
calibrated, but only thresholds at or above the one applied and NMS at or
below the one applied can be told apart; a note says so when the lowest score
is at least :data:`THRESHOLDED_SCORE`.

The chosen threshold lies halfway between the score of the last detection kept
and the next lower score, so that scores a little off on new images fall the
same way. ``score_threshold`` of the result is the best single threshold for all
classes together (micro F1, or the total count error); it applies to classes the
ground truth does not have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import usable_boxes
from napari_faster_rcnn.core.evaluation.matching import (
    best_matches,
    check_aligned,
    evaluation_classes,
    flatten,
    label_notes,
    map_labels,
    overlapping_pairs,
)
from napari_faster_rcnn.core.prediction.settings import RAW_SCORE_THRESHOLD
from napari_faster_rcnn.core.prediction.thresholds import Thresholds

__all__ = ["NMS_CANDIDATES", "OBJECTIVES", "THRESHOLDED_SCORE", "Calibration", "calibrate", "greedy_nms", "nms_edges"]

#: The NMS IoU thresholds tried (1.0: NMS off).
NMS_CANDIDATES = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0)
OBJECTIVES = ("f1", "count")
#: Predictions whose lowest score is at least this look thresholded already (a note says so).
THRESHOLDED_SCORE = 0.1
# Pairs of detections compared at once, to bound memory.
_PAIR_CHUNK = 1 << 22
# Above this many pairs per detection (groups of ~100 detections of one class in one image),
# overlapping pairs are found through a grid rather than by comparing every pair.
_DENSE_PAIRS = 50


@dataclass
class Calibration:
    """The result of :func:`calibrate`.

    Attributes
    ----------
    thresholds : Thresholds
        What to write to ``thresholds.json``.
    objective : str
        ``"f1"`` or ``"count"``.
    value : float
        The objective at the choice: macro F1, or the total count error.
    per_class : dict
        Per class with ground truth: ``score_threshold``, ``f1``, ``precision``,
        ``recall``, ``true_positives``, ``predictions``, ``ground_truth``,
        ``count_error``, at the chosen thresholds.
    by_nms : dict
        The objective at each NMS IoU tried (its best score thresholds).
    micro_f1 : float
        F1 of all classes together at the chosen thresholds.
    images : int
    notes : list of str
    """

    thresholds: Thresholds
    objective: str
    value: float
    per_class: dict[str, dict]
    by_nms: dict[float, float]
    micro_f1: float
    images: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready summary (NaN becomes None)."""
        def clean(value):
            if isinstance(value, dict):
                return {key: clean(item) for key, item in value.items()}
            return None if isinstance(value, float) and math.isnan(value) else value

        return clean({
            "thresholds": self.thresholds.to_dict(),
            "objective": self.objective,
            "value": self.value,
            "micro_f1": self.micro_f1,
            "images": self.images,
            "per_class": self.per_class,
            "by_nms": {f"{key:g}": value for key, value in self.by_nms.items()},
            "notes": list(self.notes),
        })


def calibrate(
    ground_truths: Sequence[Annotation],
    predictions: Sequence[Annotation],
    objective: str = "f1",
    *,
    nms_candidates: Sequence[float] = NMS_CANDIDATES,
    iou_threshold: float = 0.5,
    classes: Sequence[str] | None = None,
    image_sizes: Sequence | None = None,
) -> Calibration:
    """The score threshold per class and the NMS IoU that best fit the ground truth (see the module docstring).

    Parameters
    ----------
    ground_truths, predictions
        One annotation per image, aligned; predictions are raw detections with scores.
    objective
        ``"f1"`` or ``"count"``.
    nms_candidates
        NMS IoU thresholds to try, each from 0 to 1.
    iou_threshold
        A detection is a true positive at at least this IoU with its box.
    classes
        The class list integer labels are resolved against (as in evaluation).
    image_sizes
        ``(height, width)`` per image, or None: ground-truth boxes are clipped
        to their image and dropped without area, as evaluation does.

    Raises
    ------
    ValueError
        For an unknown objective, bad NMS candidates, lists of different lengths,
        predictions without scores, or ground truth without any box.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    candidates = sorted({float(value) for value in nms_candidates})
    if not candidates or not all(0.0 <= value <= 1.0 for value in candidates):
        raise ValueError(f"NMS candidates must be numbers from 0 to 1, got {list(nms_candidates)}")
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise ValueError(f"the IoU threshold must be in (0, 1], got {iou_threshold}")
    check_aligned(ground_truths, predictions)
    count = len(ground_truths)
    sizes = list(image_sizes) if image_sizes is not None else [None] * count
    notes, warnings = label_notes(ground_truths, predictions, classes)
    notes = [*notes, *warnings]
    cleaned = []
    for annotation, size in zip(ground_truths, sizes):
        boxes, keep, _ = usable_boxes(annotation.boxes, *(size if size is not None else (None, None)))
        cleaned.append(Annotation(boxes, [label for label, kept in zip(annotation.labels, keep) if kept],
                                  classes=annotation.classes))
    names, gt_labels, pred_labels = evaluation_classes(cleaned, predictions, classes)
    class_id = {name: i for i, name in enumerate(names)}
    n_classes = max(len(names), 1)
    gt = flatten(cleaned, gt_labels, class_id)
    dt = flatten(predictions, pred_labels, class_id, with_scores=True)
    if len(gt["classes"]) == 0:
        raise ValueError("the ground truth has no box: nothing to calibrate against")
    scores = dt["scores"].astype(np.float64)
    n = len(scores)
    if n and scores.min() >= THRESHOLDED_SCORE:
        notes.append(
            f"the lowest score is {scores.min():.3g}: these predictions look thresholded already (raw detections "
            f"go down to {RAW_SCORE_THRESHOLD:g}); no threshold below it and no NMS looser than the one applied can "
            "be tried, so the choice may be worse than from raw detections (predict --raw)")

    # one ranking (descending score, ties in image and detection order, as evaluation and NMS rank)
    ranked = np.argsort(-scores, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[ranked] = np.arange(n)
    best_gt, best_iou = best_matches(gt, dt, n_classes)
    found = best_iou >= iou_threshold
    key = dt["images"] * n_classes + dt["classes"]
    gt_key_counts = np.bincount(gt["images"] * n_classes + gt["classes"], minlength=count * n_classes)
    gt_counts = np.bincount(gt["classes"], minlength=n_classes)
    with_truth = np.flatnonzero(gt_counts > 0)
    edges = nms_edges(dt["boxes"], key, rank, above=min(candidates))
    targets = np.unique(edges[1], return_inverse=True)

    # orders made once; each NMS value only filters them
    by_box = np.lexsort((rank, best_gt))
    orders = {
        "rank": ranked,
        "key": np.lexsort((rank, key)),
        "class": np.lexsort((rank, dt["classes"])),
        "found": by_box[found[by_box]],
    }

    def survivors(nms):
        return greedy_nms(edges, rank, nms, targets) if nms < 1.0 else np.ones(n, dtype=bool)

    parts = (orders, scores, dt, key, best_gt, gt_key_counts, gt_counts, with_truth, n_classes)
    aggregate = {nms: _best_per_class(objective, survivors(nms), *parts, final=False)["value"]
                 for nms in candidates}
    better = max if objective == "f1" else min
    best_value = better(aggregate.values())
    nms = min((value for value in candidates if aggregate[value] == best_value), key=lambda value: abs(value - 0.5))
    choice = _best_per_class(objective, survivors(nms), *parts)

    # thresholds.json names the raw predicted labels; each takes its class's threshold
    raw_labels = list(dict.fromkeys(label for a in predictions for label in a.labels))
    resolved = dict(zip(raw_labels, map_labels(raw_labels, names)))
    per_label = {}
    for k in with_truth:
        name = names[k]
        labels = [raw for raw, mapped in resolved.items() if mapped == name] or [name]
        for label in labels:
            per_label[label] = choice["thresholds"][k]
    no_truth = [names[k] for k in range(len(names)) if gt_counts[k] == 0 and names[k] in resolved.values()]
    if no_truth:
        notes.append(f"{len(no_truth)} predicted class(es) have no ground truth in these images and keep the common "
                     f"threshold {choice['common']:.4g}: {', '.join(no_truth[:8])}")
    thresholds = Thresholds(score_threshold=choice["common"], nms_threshold=nms, classes=None,
                            class_score_thresholds=per_label)
    return Calibration(thresholds=thresholds, objective=objective, value=float(best_value),
                       per_class={names[k]: choice["per_class"][k] for k in with_truth}, by_nms=aggregate,
                       micro_f1=choice["micro_f1"], images=count, notes=notes)


# --- the search -------------------------------------------------------------------


def _best_per_class(objective, kept, orders, scores, dt, key, best_gt, gt_key_counts, gt_counts, with_truth,
                    n_classes, final=True) -> dict:
    """Every class's best threshold over the survivors ``kept`` of one NMS value, and (``final``) the
    common one and every statistic; without ``final``, only what the objective needs."""
    # true positives: the first survivor (in rank order) that finds a box takes it
    candidate = orders["found"][kept[orders["found"]]]  # by box found, best first
    found_box = best_gt[candidate]
    true_positive = np.zeros(len(scores), dtype=bool)
    if len(candidate):
        true_positive[candidate[np.r_[True, found_box[1:] != found_box[:-1]]]] = True
    # count changes: a survivor beyond the true count of its image and class adds 1 to the error, else removes 1
    if final or objective == "count":
        by_key = orders["key"][kept[orders["key"]]]  # by image and class, best first
        key_sorted = key[by_key]
        position = np.arange(len(by_key))
        starts = np.r_[True, key_sorted[1:] != key_sorted[:-1]] if len(key_sorted) else np.zeros(0, bool)
        group_start = np.maximum.accumulate(np.where(starts, position, 0)) if len(position) else position
        within = np.empty(len(scores), dtype=np.int64)
        within[by_key] = position - group_start
        change = np.where(within >= gt_key_counts[key], 1, -1)
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


# --- NMS for every image at once ---------------------------------------------------------


def nms_edges(boxes, key, rank, above: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(better, worse, iou)``: every pair of detections of the same image and class that overlap
    with IoU above ``above``, the better-ranked first.

    A sweep along x: sorted by (group, left edge), a detection is compared with the detections
    after it in its group whose left edge lies before its right edge, the only ones that can
    overlap it there (each overlapping pair is found once, from the one further left). When that
    leaves too many pairs (more than :data:`_DENSE_PAIRS` per detection: crowded columns), the
    grid of ``overlapping_pairs`` finds them instead.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    valid = np.flatnonzero(np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    if len(valid) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    order = valid[np.lexsort((boxes[valid, 0], key[valid]))]
    # complex numbers sort and search by real part (the group), then imaginary part (the left edge)
    place = key[order].astype(np.float64) + 1j * boxes[order, 0]
    # IoU above t needs an overlap wider than t times either width: the right one starts before
    # x2 - t w of the left one (a little wider, for rounding)
    reach = boxes[order, 2] - max(float(above) * (1 - 1e-6), 0.0) * (boxes[order, 2] - boxes[order, 0])
    end = np.searchsorted(place, key[order].astype(np.float64) + 1j * reach, side="left")
    after = np.maximum(end - np.arange(len(order)) - 1, 0)
    if int(after.sum()) > _DENSE_PAIRS * len(order):
        return _grid_edges(boxes, key, rank, above)
    better, worse, ious = [], [], []
    ends = np.cumsum(after)
    first, count = 0, len(order)
    while first < count:
        stop = max(first + 1, int(np.searchsorted(ends, (ends[first - 1] if first else 0) + _PAIR_CHUNK, "right")))
        counts = after[first:stop]
        total = int(counts.sum())
        if total:
            left = np.repeat(np.arange(first, stop), counts)
            right = left + 1 + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            a, b = order[left], order[right]
            iou = _paired_iou(boxes[a], boxes[b])
            overlap = iou > max(float(above), 0.0)
            a, b, iou = a[overlap], b[overlap], iou[overlap]
            swap = rank[b] < rank[a]
            better.append(np.where(swap, b, a))
            worse.append(np.where(swap, a, b))
            ious.append(iou)
        first = stop
    if not better:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(better), np.concatenate(worse), np.concatenate(ious)


def _grid_edges(boxes, key, rank, above: float = 0.0):
    better, worse, ious = [], [], []
    for b_index, a_index, iou in overlapping_pairs(boxes, key, boxes, key):
        keep = (rank[a_index] < rank[b_index]) & (iou > above)
        better.append(a_index[keep])
        worse.append(b_index[keep])
        ious.append(iou[keep])
    if not better:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(better), np.concatenate(worse), np.concatenate(ious)


def _paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    intersection = width * height
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / union, 0.0)


def greedy_nms(edges, rank, nms_threshold: float, targets=None) -> np.ndarray:
    """Which detections greedy NMS keeps (a ``(n,)`` bool mask), given the overlapping pairs of
    :func:`nms_edges` and each detection's rank: a detection is dropped when a kept, better-ranked
    one overlaps it with IoU above ``nms_threshold``, as ``torchvision.ops.batched_nms``.

    In rounds: a detection whose better overlapping ones are all decided is kept when none of
    them is kept, else dropped; the rounds are as many as the longest chain of overlaps.
    ``targets``: ``np.unique(worse, return_inverse=True)`` of the edges, when made once for many calls.
    """
    better, worse, iou = edges
    targets, local = np.unique(worse, return_inverse=True) if targets is None else targets
    n = len(rank)
    over = iou > nms_threshold
    better, worse, local = better[over], worse[over], local[over]
    state = np.ones(n, dtype=np.int8)  # 1 kept, 2 dropped, 0 undecided: those with a better overlapping one
    state[worse] = 0
    while len(better):
        source = state[better]
        dropped = np.zeros(len(targets), dtype=bool)
        dropped[local[source == 1]] = True
        waiting = np.zeros(len(targets), dtype=bool)
        waiting[local[source == 0]] = True
        undecided = state[targets] == 0
        state[targets[undecided & dropped]] = 2
        state[targets[undecided & ~dropped & ~waiting]] = 1
        open_edge = state[worse] == 0
        better, worse, local = better[open_edge], worse[open_edge], local[open_edge]
    return state == 1
