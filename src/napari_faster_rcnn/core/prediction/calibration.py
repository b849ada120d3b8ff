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
    :func:`~napari_faster_rcnn.core.prediction.nms_pairs.nms_survivors`): one pass over the edges settles most detections at
    every value, and the few left are settled in rounds along their edges.
    The labels are resolved once
    (:func:`~napari_faster_rcnn.core.evaluation.matching.resolve_labels`),
    for the notes and the matching alike.
    The search over the running sums lives in
    :mod:`~napari_faster_rcnn.core.prediction.threshold_search`; this module
    reads the input, finds the pairs and NMS survivors, and builds the result.

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
    resolve_labels,
)
from napari_faster_rcnn.core.prediction.nms_pairs import grid_edges, near_pairs, nms_survivors, split_pairs
from napari_faster_rcnn.core.prediction.settings import RAW_SCORE_THRESHOLD
from napari_faster_rcnn.core.prediction.threshold_search import (
    best_per_class,
    cut_points,
    objective_value,
    order_by,
    score_ranking,
)
from napari_faster_rcnn.core.prediction.thresholds import Thresholds

__all__ = ["NMS_CANDIDATES", "OBJECTIVES", "THRESHOLDED_SCORE", "Calibration", "calibrate"]

#: The NMS IoU thresholds tried (1.0: NMS off).
NMS_CANDIDATES = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0)
OBJECTIVES = ("f1", "count")
#: Predictions whose lowest score is at least this look thresholded already (a note says so).
THRESHOLDED_SCORE = 0.1


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
    ranked = score_ranking(scores)
    rank = np.empty(n, dtype=np.int64)
    rank[ranked] = np.arange(n)
    key = dt["images"] * n_classes + dt["classes"]
    gt_key = gt["images"] * n_classes + gt["classes"]
    above = min(candidates)
    # one sweep finds the overlapping pairs of detections (NMS) and of a detection and a box (matching)
    pairs = near_pairs(dt["boxes"], key, gt["boxes"], gt_key, min(above, float(iou_threshold)))
    if pairs is None:  # crowded: the grid of overlapping_pairs
        best_gt, best_iou = best_matches(gt, dt, n_classes)
        edges = grid_edges(dt["boxes"], key, rank, above)
    else:
        edges, best_gt, best_iou = split_pairs(pairs, n, rank, above, float(iou_threshold))
    found = best_iou >= iou_threshold
    gt_key_counts = np.bincount(gt_key, minlength=count * n_classes)
    gt_counts = np.bincount(gt["classes"], minlength=n_classes)
    with_truth = np.flatnonzero(gt_counts > 0)

    # orders made once (ties in rank order); each NMS value only filters them
    found_index = np.flatnonzero(found)
    by_class = order_by(dt["classes"], rank, n, ranked)
    orders = {
        "rank": ranked,
        "key": order_by(key, rank, n),
        "class": by_class,
        "found": found_index[order_by(best_gt[found_index], rank[found_index], n)],
    }

    orders["cuts"] = cut_points(orders, scores, dt["classes"], gt_counts)
    survivors = nms_survivors(edges, n, candidates)
    parts = (orders, scores, dt, key, best_gt, gt_key_counts, gt_counts, with_truth, n_classes)
    aggregate = {nms: objective_value(objective, survivors[nms], *parts) for nms in candidates}
    better = max if objective == "f1" else min
    best_value = better(aggregate.values())
    nms = min((value for value in candidates if aggregate[value] == best_value), key=lambda value: abs(value - 0.5))
    choice = best_per_class(objective, survivors[nms], *parts)

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
