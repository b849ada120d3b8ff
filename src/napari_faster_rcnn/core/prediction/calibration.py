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

Why it is fast (one sweep, one sort, cumulative sums)
    Greedy NMS and the matching both decide a detection from the detections
    scored above it, so neither changes when the detections below a threshold
    are dropped: with NMS applied once per NMS value, a detection's TP/FP status
    is the same at every score threshold that keeps it. Sorting the survivors by
    score once, the running sums of true positives (or of count changes) give
    the objective at every threshold at once; for the choice of the NMS value
    they are read only at the ends of runs of equal scores, for all classes
    together. The pairs that matter are found for every image at once by one
    sweep along x over the detections and the ground-truth boxes together
    (sorted by image, class and left edge): detection pairs above the lowest
    NMS value become the NMS edges, detection-box pairs at the IoU threshold
    the matches, from one IoU computation. Crowded columns take the grid of
    :func:`~napari_faster_rcnn.core.evaluation.matching.overlapping_pairs`
    instead. NMS is computed for all NMS values together (see
    :func:`nms_survivors`): one pass over the edges settles most detections at
    every value, and the few left are settled in rounds along their edges.
    The labels are resolved once
    (:func:`~napari_faster_rcnn.core.evaluation.matching.resolve_labels`),
    for the notes and the matching alike.

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
from itertools import chain

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.evaluation.matching import (
    best_matches,
    check_aligned,
    label_notes,
    map_labels,
    overlapping_pairs,
    resolve_labels,
)
from napari_faster_rcnn.core.prediction.settings import RAW_SCORE_THRESHOLD
from napari_faster_rcnn.core.prediction.thresholds import Thresholds

__all__ = ["NMS_CANDIDATES", "OBJECTIVES", "THRESHOLDED_SCORE", "Calibration", "calibrate", "greedy_nms", "nms_edges", "nms_survivors"]

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
    # labels resolved once, for the notes and the matching
    resolution = resolve_labels(ground_truths, predictions, classes)
    notes, warnings = label_notes(ground_truths, predictions, classes, resolution=resolution)
    notes = [*notes, *warnings]
    truth_boxes, usable = _usable_truth(ground_truths, sizes)
    truth = ground_truths
    if not usable.all():
        # the class list follows the boxes evaluated, as in evaluation: resolve the labels of those
        starts = np.cumsum([0, *(len(a) for a in ground_truths)])
        truth = [Annotation(truth_boxes[starts[i]:starts[i + 1]][usable[starts[i]:starts[i + 1]]],
                            [label for label, kept in zip(a.labels, usable[starts[i]:starts[i + 1]]) if kept],
                            classes=a.classes) for i, a in enumerate(ground_truths)]
        resolution = resolve_labels(truth, predictions, classes)
    names = resolution.classes
    class_id = {name: i for i, name in enumerate(names)}
    label_id = {label: class_id[name] for label, name in resolution.lookup.items()}
    n_classes = max(len(names), 1)
    gt = _flat(truth, label_id)
    gt["boxes"] = truth_boxes[usable]
    dt = _flat(predictions, label_id, with_scores=True)
    if len(gt["classes"]) == 0:
        raise ValueError("the ground truth has no box: nothing to calibrate against")
    scores = np.asarray(dt["scores"], dtype=np.float64)
    n = len(scores)
    if n and scores.min() >= THRESHOLDED_SCORE:
        notes.append(
            f"the lowest score is {scores.min():.3g}: these predictions look thresholded already (raw detections "
            f"go down to {RAW_SCORE_THRESHOLD:g}); no threshold below it and no NMS looser than the one applied can "
            "be tried, so the choice may be worse than from raw detections (predict --raw)")

    # one ranking (descending score, ties in image and detection order, as evaluation and NMS rank)
    ranked = _ranking(scores)
    rank = np.empty(n, dtype=np.int64)
    rank[ranked] = np.arange(n)
    key = dt["images"] * n_classes + dt["classes"]
    gt_key = gt["images"] * n_classes + gt["classes"]
    above = min(candidates)
    # one sweep finds the overlapping pairs of detections (NMS) and of a detection and a box (matching)
    pairs = _near_pairs(dt["boxes"], key, gt["boxes"], gt_key, min(above, float(iou_threshold)))
    if pairs is None:  # crowded: the grid of overlapping_pairs
        best_gt, best_iou = best_matches(gt, dt, n_classes)
        edges = _grid_edges(dt["boxes"], key, rank, above)
    else:
        edges, best_gt, best_iou = _split_pairs(pairs, n, rank, above, float(iou_threshold))
    found = best_iou >= iou_threshold
    gt_key_counts = np.bincount(gt_key, minlength=count * n_classes)
    gt_counts = np.bincount(gt["classes"], minlength=n_classes)
    with_truth = np.flatnonzero(gt_counts > 0)

    # orders made once (ties in rank order); each NMS value only filters them
    found_index = np.flatnonzero(found)
    by_class = _order_by(dt["classes"], rank, n, ranked)
    orders = {
        "rank": ranked,
        "key": _order_by(key, rank, n),
        "class": by_class,
        "found": found_index[_order_by(best_gt[found_index], rank[found_index], n)],
    }

    orders["cuts"] = _cut_points(orders, scores, dt["classes"], gt_counts)
    survivors = nms_survivors(edges, n, candidates)
    parts = (orders, scores, dt, key, best_gt, gt_key_counts, gt_counts, with_truth, n_classes)
    aggregate = {nms: _objective_value(objective, survivors[nms], *parts) for nms in candidates}
    better = max if objective == "f1" else min
    best_value = better(aggregate.values())
    nms = min((value for value in candidates if aggregate[value] == best_value), key=lambda value: abs(value - 0.5))
    choice = _best_per_class(objective, survivors[nms], *parts)

    # thresholds.json names the raw predicted labels; each takes its class's threshold
    raw_labels = list(resolution.prediction_raw)
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


# --- the input as flat arrays -------------------------------------------------------------


def _usable_truth(ground_truths, sizes) -> tuple[np.ndarray, np.ndarray]:
    """Every ground-truth box after :func:`~napari_faster_rcnn.core.data.boxes.usable_boxes`'s rule,
    for all images at once: ``(boxes, usable)``, the boxes clipped to their image where its size is
    known, and which have an area (the ones evaluated)."""
    counts = np.array([len(a) for a in ground_truths], dtype=np.int64)
    boxes = np.concatenate([a.boxes for a in ground_truths]) if len(ground_truths) else np.zeros((0, 4))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    known = [size is not None and size[0] is not None and size[1] is not None for size in sizes]
    if any(known):
        limits = np.array([(float(size[1]), float(size[0])) if flag else (np.inf, np.inf)
                           for size, flag in zip(sizes, known)]).reshape(-1, 2)
        clip = np.repeat(np.array(known, dtype=bool), counts)
        width, height = (np.repeat(limits[:, 0], counts)[clip], np.repeat(limits[:, 1], counts)[clip])
        boxes = boxes.copy()
        for column, limit in ((0, width), (2, width), (1, height), (3, height)):
            boxes[clip, column] = np.minimum(np.maximum(boxes[clip, column], 0.0), limit)
    usable = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, usable


def _flat(annotations, label_id, with_scores=False) -> dict:
    """Classes (through ``label_id``, raw label to class index), images and boxes of many images as arrays."""
    counts = np.array([len(a) for a in annotations], dtype=np.int64)
    total = int(counts.sum())
    labels = chain.from_iterable(a.labels for a in annotations)
    flat = {
        "classes": np.fromiter(map(label_id.__getitem__, labels), np.int64, total),
        "images": np.repeat(np.arange(len(annotations)), counts),
    }
    if with_scores:
        flat["boxes"] = (np.concatenate([a.boxes for a in annotations]) if total else np.zeros((0, 4))).reshape(-1, 4)
        scores = [a.scores for a in annotations if len(a)]
        flat["scores"] = np.concatenate(scores) if scores else np.zeros(0)
    return flat


# --- the search -------------------------------------------------------------------


def _best_per_class(objective, kept, orders, scores, dt, key, best_gt, gt_key_counts, gt_counts, with_truth,
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


def _cut_points(orders, scores, classes, gt_counts) -> dict:
    """Where a class's ranked list can be cut, made once for :func:`_objective_value`.

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


def _objective_value(objective, kept, orders, scores, dt, key, best_gt, gt_key_counts, gt_counts, with_truth,
                     n_classes) -> float:
    """The objective at every class's best threshold over the survivors ``kept`` of one NMS value:
    ``_best_per_class(...)["value"]``, the same numbers, computed for all classes at once over the
    cuts of :func:`_cut_points`."""
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


def _ranking(scores) -> np.ndarray:
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


def _order_by(values, rank, n, ranked=None) -> np.ndarray:
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


# --- overlapping pairs: one sweep for NMS and matching ----------------------------------


def _sweep(boxes, key, reach_iou: float):
    """Candidate pairs ``(i, j)`` (indices into ``boxes``) of the same key that can overlap with IoU
    above ``reach_iou``, each pair once, in chunks; None when they are too many (crowded columns).

    A sweep along x: sorted by (key, left edge), a box is paired with the boxes after it in its
    key whose left edge lies before its right edge less ``reach_iou`` times its width (IoU above
    t needs an overlap wider than t times either width; a little wider, for rounding). Key and
    left edge are folded into one float, ``key * stride + x1``, with ``stride`` above twice the
    span of the x coordinates: rounding keeps that order monotone, so the windows found hold at
    least every such pair (the exact IoU decides afterwards).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    valid = np.flatnonzero(np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    if len(valid) < 2:
        return []
    x1, x2, group = boxes[valid, 0], boxes[valid, 2], np.asarray(key, dtype=np.int64)[valid]
    low = float(x1.min())
    stride = 2.0 * (float(x2.max()) - low) + 2.0
    base = group.astype(np.float64) * stride
    place = base + (x1 - low)
    sort = np.argsort(place)
    order, place = valid[sort], place[sort]
    reach = x2 - max(float(reach_iou) * (1 - 1e-6), 0.0) * (x2 - x1)
    end = np.searchsorted(place, (base + (reach - low))[sort], side="right")
    after = np.maximum(end - np.arange(len(order)) - 1, 0)
    if int(after.sum()) > _DENSE_PAIRS * len(order):
        return None
    # folded keys stay apart unless key * stride nears 2**52: then check the keys of the pairs
    exact_keys = float(np.abs(group).max()) * stride < 2.0**50
    return _chunked_pairs(order, after, None if exact_keys else np.asarray(key, dtype=np.int64))


def _chunked_pairs(order, after, key):
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
            if key is not None:
                same = key[a] == key[b]
                a, b = a[same], b[same]
            yield a, b
        first = stop


class _Boxes:
    """Box columns and areas, for the IoU of many pairs (the arithmetic of the evaluation's matching)."""

    def __init__(self, boxes):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self.x1, self.y1, self.x2, self.y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
        self.area = (self.x2 - self.x1) * (self.y2 - self.y1)

    def iou(self, a, b):
        width = np.minimum(self.x2[a], self.x2[b])
        width -= np.maximum(self.x1[a], self.x1[b])
        np.maximum(width, 0, out=width)
        height = np.minimum(self.y2[a], self.y2[b])
        height -= np.maximum(self.y1[a], self.y1[b])
        np.maximum(height, 0, out=height)
        width *= height  # the intersection
        union = self.area[a] + self.area[b]
        union -= width
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, width / union, 0.0)


def _near_pairs(dt_boxes, dt_key, gt_boxes, gt_key, reach_iou: float):
    """The pairs of two detections, or of a detection and a ground-truth box, of the same key that
    can overlap with IoU above ``reach_iou``, with their IoU: ``(a, b, iou)`` over the detections
    followed by the boxes (``b >= len(dt_boxes)`` is box ``b - len(dt_boxes)``); None when crowded."""
    n = len(dt_boxes)
    boxes = np.concatenate([np.asarray(dt_boxes, dtype=np.float64).reshape(-1, 4),
                            np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)])
    keys = np.concatenate([np.asarray(dt_key, dtype=np.int64), np.asarray(gt_key, dtype=np.int64)])
    chunks = _sweep(boxes, keys, reach_iou)
    if chunks is None:
        return None
    columns = _Boxes(boxes)
    found_a, found_b, found_iou = [], [], []
    for a, b in chunks:
        # two ground-truth boxes: not needed; a detection first
        low, high = np.minimum(a, b), np.maximum(a, b)
        needed = low < n
        a, b = low[needed], high[needed]
        iou = columns.iou(a, b)
        overlap = iou > 0
        found_a.append(a[overlap])
        found_b.append(b[overlap])
        found_iou.append(iou[overlap])
    if not found_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_iou)


def _split_pairs(pairs, n, rank, above: float, iou_threshold: float):
    """NMS edges (see :func:`nms_edges`) and each detection's match (see
    :func:`~napari_faster_rcnn.core.evaluation.matching.best_matches`) from :func:`_near_pairs`:
    ``best_gt`` and ``best_iou`` are exact for the detections whose best IoU is at least
    ``iou_threshold``, -1 and -inf for the others (no match there in either case)."""
    a, b, iou = pairs
    both = b < n
    edge = both & (iou > max(above, 0.0))
    ea, eb, eiou = a[edge], b[edge], iou[edge]
    swap = rank[eb] < rank[ea]
    edges = (np.where(swap, eb, ea), np.where(swap, ea, eb), eiou)
    match = ~both & (iou >= iou_threshold)
    detection, box, match_iou = a[match], b[match] - n, iou[match]
    best_iou = np.full(n, -np.inf)
    np.maximum.at(best_iou, detection, match_iou)
    # on ties the first box in the images' order
    top = match_iou == best_iou[detection]
    best_gt = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best_gt, detection[top], box[top])
    best_gt[best_iou == -np.inf] = -1
    return edges, best_gt, best_iou


def nms_edges(boxes, key, rank, above: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(better, worse, iou)``: every pair of detections of the same image and class that overlap
    with IoU above ``above``, the better-ranked first.

    A sweep along x (see :func:`_sweep`); when that leaves too many pairs (more than
    :data:`_DENSE_PAIRS` per detection: crowded columns), the grid of ``overlapping_pairs``
    finds them instead.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    rank = np.asarray(rank)
    chunks = _sweep(boxes, key, above)
    if chunks is None:
        return _grid_edges(boxes, key, rank, above)
    columns = _Boxes(boxes)
    better, worse, ious = [], [], []
    for a, b in chunks:
        iou = columns.iou(a, b)
        overlap = iou > max(float(above), 0.0)
        a, b, iou = a[overlap], b[overlap], iou[overlap]
        swap = rank[b] < rank[a]
        better.append(np.where(swap, b, a))
        worse.append(np.where(swap, a, b))
        ious.append(iou)
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


# --- greedy NMS for every image and every NMS value at once --------------------------------

# NMS values decided together in one pass over the edges (bits of one integer).
_BITS = 62


def greedy_nms(edges, rank, nms_threshold: float) -> np.ndarray:
    """Which detections greedy NMS keeps (a ``(n,)`` bool mask), given the overlapping pairs of
    :func:`nms_edges` and each detection's rank: a detection is dropped when a kept, better-ranked
    one overlaps it with IoU above ``nms_threshold``, as ``torchvision.ops.batched_nms``
    (see :func:`nms_survivors`)."""
    return nms_survivors(edges, len(rank), [nms_threshold])[float(nms_threshold)]


def nms_survivors(edges, n: int, thresholds) -> dict[float, np.ndarray]:
    """Greedy NMS (see :func:`greedy_nms`) at every NMS IoU of ``thresholds``: ``{threshold: kept}``.

    A detection without a better one overlapping it above the threshold is kept; in the first
    round, every detection that such a detection overlaps above the threshold is dropped. That
    round is done for all thresholds in one pass over the edges: each edge drops its worse end at
    the thresholds below its IoU and at or above the largest IoU into its better end (where the
    better one is kept outright), a range of bits of one integer per detection. The few
    detections left undecided are settled threshold by threshold in rounds: one whose better
    overlapping ones are all decided is kept when none of them is kept, else dropped.
    """
    better, worse, iou = edges
    values = sorted({float(value) for value in thresholds})
    # the largest IoU with a better detection: a detection is a root (kept outright) at thresholds at or above it
    incoming = np.full(n, -np.inf)
    np.maximum.at(incoming, worse, iou)
    result = {}
    for first in range(0, len(values), _BITS):
        chunk = values[first:first + _BITS]
        below = np.left_shift(np.uint64(1), np.arange(len(chunk) + 1, dtype=np.uint64)) - np.uint64(1)
        between = below[:, None] & ~below[None, :]  # [a, r]: the bits of chunk[r:a]
        active = _count_below(iou, chunk)  # the edge is there at chunk[:active]
        target = _count_below(incoming, chunk)  # a detection has a better one overlapping it at chunk[:target]
        # the better end is a root at chunk[target[better]:]: there the edge drops its worse end
        dropped = np.zeros(n, dtype=np.uint64)
        np.bitwise_or.at(dropped, worse, between[active, target[better]])
        undecided = below[target] & ~dropped
        # the edges into a detection left undecided at some threshold where the edge is there
        open_bits = undecided[worse] & below[active]
        open_edge = np.flatnonzero(open_bits)
        rest_better, rest_worse, open_bits = better[open_edge], worse[open_edge], open_bits[open_edge]
        dropped = dropped.astype(np.min_scalar_type(int(below[-1])))
        for bit, value in enumerate(chunk):
            mask = np.uint64(1 << bit)
            state = (target <= bit).view(np.int8)  # 1 kept, 2 dropped, 0 undecided
            state[(dropped & dropped.dtype.type(1 << bit)) != 0] = 2
            here = (open_bits & mask) != 0
            result[value] = _settle(state, rest_better[here], rest_worse[here])
    return result


def _count_below(values, chunk) -> np.ndarray:
    """How many of the sorted numbers ``chunk`` lie below each of ``values``."""
    count = np.zeros(len(values), dtype=np.uint8)
    for value in chunk:
        count += values > value
    return count


def _settle(state, better, worse) -> np.ndarray:
    """Greedy NMS's rounds from ``state`` (1 kept, 2 dropped, 0 undecided) along the edges
    ``better -> worse`` into undecided detections (above the threshold); the kept mask."""
    targets, local = np.unique(worse, return_inverse=True)
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
