"""Detection metrics: Pascal VOC AP per class, COCO mAP, precision-recall curves.

Both evaluations take two lists of :class:`~.annotations.Annotation`, one per
image and aligned by image: ``ground_truths[i]`` and ``predictions[i]`` describe
the same image. Pass the images sorted by file name (as
:func:`~.dataset.discover_dataset` lists them): detections of equal score are
ranked in that order.

Pascal VOC (VOC 2010+ rules, all-point interpolation)
    IoU on continuous coordinates (no ``+1`` pixel, as torchvision and COCO
    compute it). Detections are ranked by descending score with a stable sort
    (ties keep the order of the images, then of the detections within each
    image). Each detection is matched to the ground-truth box of its class in
    its image with the highest IoU (the first such box on ties); it is a true
    positive when that IoU is at least the threshold and the box is not taken
    yet, else a false positive. AP is the area under the precision-recall curve
    after making precision monotone. A class without ground truth gets no AP
    (NaN); mAP is the mean over the classes that have ground truth.

COCO
    mAP@[.5:.95], mAP@0.5 and mAP@0.75 through ``faster-coco-eval`` (the C++
    re-implementation of pycocotools), with COCO's rules (101 recall points),
    counting at most ``max_dets`` detections per image: COCO's own cap is 100,
    :func:`evaluate` takes the largest number of any image (at least 100) and
    warns when a smaller cap given to it cuts detections. An image of more than
    400 boxes goes to the library in parts that give the same AP (see
    :func:`.coco.coco_evaluation`).

Ground truth
    :func:`evaluate` applies training's rule to the ground truth
    (:func:`~napari_faster_rcnn.core.data.boxes.usable_boxes`): boxes are
    clipped to their image when its size is known, and boxes without area are
    left out, counted in ``dropped_boxes``.

Labels
    Ground truth usually names its classes (``"head"``) while a model's raw
    output may carry class ids as text (``"1"``). Both are resolved against one
    class list, in class-id order (id = position + 1, 0 being torchvision's
    background): a label that is a name in the list is that class; a decimal
    integer ``k`` that is not a name in the list is the ``k``-th class; anything
    else is a class of its own (absent from the ground truth, so its detections
    are all false positives). The list is the ``classes`` argument, by default
    the class list the ground-truth files carry, else the one the prediction
    files carry (``predict`` writes the model's), else the ground truth's labels
    in order of appearance (see :func:`.matching.base_classes`). :func:`evaluate`
    notes every integer mapped, and warns when no predicted label names a
    ground-truth class.

Training's validation step can call :func:`voc_evaluation` (or :func:`evaluate`
for both) every epoch: it takes plain annotations and is vectorized (5,000
images x 100 detections in about half a second). The label resolution and the
matching live in :mod:`.matching`, COCO in :mod:`.coco`, and reading a folder
of predictions against a ground-truth folder in :mod:`.prediction_folders`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import usable_boxes
from napari_faster_rcnn.core.evaluation.coco import COCOResult, coco_evaluation
from napari_faster_rcnn.core.evaluation.matching import (
    best_matches,
    check_aligned,
    evaluation_classes,
    flatten,
    label_notes,
    resolve_labels,
)

__all__ = [
    "Evaluation",
    "PRCurve",
    "VOCResult",
    "average_precision",
    "evaluate",
    "voc_evaluation",
]


# --- Pascal VOC ---------------------------------------------------------------


@dataclass
class PRCurve:
    """Precision and recall after each detection of one class, in ranked order."""

    precision: np.ndarray
    recall: np.ndarray  # NaN when the class has no ground truth
    scores: np.ndarray


@dataclass
class VOCResult:
    """The result of :func:`voc_evaluation`.

    Attributes
    ----------
    iou_threshold : float
    classes : list of str
        Every class: the evaluation's class list, then classes only predicted.
    ap : dict
        AP per class name; NaN for a class without ground truth.
    map : float
        Mean AP over the classes that have ground truth (NaN if none has).
    curves : dict
        :class:`PRCurve` per class name.
    ground_truth_counts, prediction_counts : dict
        Boxes per class name.
    true_positive : list of (N_i,) bool arrays
        Per image, for each prediction in the order of ``predictions[i]``:
        whether it is a true positive.
    matched_ground_truth : list of (N_i,) int arrays
        Per image, for each prediction: the index of the ground-truth box it
        found, or -1 for a false positive.
    matched : list of (M_i,) bool arrays
        Per image, for each ground-truth box: whether a prediction found it
        (False marks a missed object).
    prediction_labels, ground_truth_labels : list of list of str
        The labels resolved against the class list, per image.
    """

    iou_threshold: float
    classes: list[str]
    ap: dict[str, float]
    map: float
    curves: dict[str, PRCurve]
    ground_truth_counts: dict[str, int]
    prediction_counts: dict[str, int]
    true_positive: list[np.ndarray] = field(repr=False)
    matched_ground_truth: list[np.ndarray] = field(repr=False)
    matched: list[np.ndarray] = field(repr=False)
    prediction_labels: list[list[str]] = field(repr=False)
    ground_truth_labels: list[list[str]] = field(repr=False)

    @property
    def per_class(self) -> dict[str, float]:
        """AP of each class that has ground truth."""
        return {name: ap for name, ap in self.ap.items() if self.ground_truth_counts[name] > 0}


def voc_evaluation(
    ground_truths: Sequence[Annotation],
    predictions: Sequence[Annotation],
    iou_threshold: float = 0.5,
    classes: Sequence[str] | None = None,
) -> VOCResult:
    """Pascal VOC AP per class and mAP at ``iou_threshold`` (rules in the module docstring).

    Parameters
    ----------
    ground_truths, predictions
        One annotation per image, aligned by image, images sorted by file name.
        Predictions need scores (an image without predictions may have none).
    iou_threshold
        A detection is a true positive when its IoU with the box it finds is at
        least this.
    classes
        The class list, in class-id order, that labels are resolved against;
        by default the ground truth's classes.

    Raises
    ------
    ValueError
        If the lists differ in length, a prediction has no score, or the
        threshold is outside (0, 1].
    """
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise ValueError(f"the IoU threshold must be in (0, 1], got {iou_threshold}")
    names, gt_labels, pred_labels = evaluation_classes(ground_truths, predictions, classes)
    class_id = {name: i for i, name in enumerate(names)}
    n_classes = len(names)

    gt = flatten(ground_truths, gt_labels, class_id)
    dt = flatten(predictions, pred_labels, class_id, with_scores=True)
    best_gt, best_iou = best_matches(gt, dt, n_classes)

    # Rank every detection: descending score, stable, so ties keep image and in-image order.
    ranked = np.argsort(-dt["scores"], kind="stable")
    candidate = best_iou[ranked] >= iou_threshold
    positions = np.flatnonzero(candidate)
    # A ground-truth box goes to the first candidate (in rank order) that finds it; later ones are false positives.
    _, first = np.unique(best_gt[ranked][positions], return_index=True)
    true_positive = np.zeros(len(ranked), dtype=bool)
    true_positive[ranked[positions[first]]] = True
    matched_gt = np.where(true_positive, best_gt, -1)
    gt_found = np.zeros(len(gt["classes"]), dtype=bool)
    gt_found[matched_gt[true_positive]] = True

    gt_counts = np.bincount(gt["classes"], minlength=n_classes)
    dt_counts = np.bincount(dt["classes"], minlength=n_classes)
    by_class = ranked[np.argsort(dt["classes"][ranked], kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(dt_counts)])
    ap, curves = {}, {}
    for k, name in enumerate(names):
        members = by_class[bounds[k] : bounds[k + 1]]
        curves[name], ap[name] = _pr_curve(true_positive[members], dt["scores"][members], int(gt_counts[k]))
    with_gt = [ap[name] for k, name in enumerate(names) if gt_counts[k] > 0]
    mean = float(np.mean(with_gt)) if with_gt else math.nan

    gt_local = matched_gt - np.repeat(gt["starts"][:-1], np.diff(dt["starts"]))  # image-local ground-truth index
    return VOCResult(
        iou_threshold=float(iou_threshold),
        classes=names,
        ap=ap,
        map=mean,
        curves=curves,
        ground_truth_counts={name: int(gt_counts[k]) for k, name in enumerate(names)},
        prediction_counts={name: int(dt_counts[k]) for k, name in enumerate(names)},
        true_positive=np.split(true_positive, dt["starts"][1:-1]),
        matched_ground_truth=np.split(np.where(true_positive, gt_local, -1), dt["starts"][1:-1]),
        matched=np.split(gt_found, gt["starts"][1:-1]),
        prediction_labels=pred_labels,
        ground_truth_labels=gt_labels,
    )


def _pr_curve(true_positive: np.ndarray, scores: np.ndarray, n_ground_truth: int) -> tuple[PRCurve, float]:
    hits = np.cumsum(true_positive)
    precision = hits / np.arange(1, len(hits) + 1)
    if n_ground_truth == 0:
        return PRCurve(precision, np.full(len(hits), math.nan), scores), math.nan
    recall = hits / n_ground_truth
    return PRCurve(precision, recall, scores), average_precision(recall, precision)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under a precision-recall curve, all-point interpolated (VOC 2010+).

    Precision is first made monotone (each point takes the highest precision at
    any higher recall); the area is then summed where recall changes.
    """
    recall_points = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.concatenate([[0.0], precision, [0.0]])
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]
    steps = np.flatnonzero(recall_points[1:] != recall_points[:-1])
    return float(np.sum((recall_points[steps + 1] - recall_points[steps]) * envelope[steps + 1]))


# --- both ---------------------------------------------------------------------


@dataclass
class Evaluation:
    """VOC and COCO results of one set of predictions (see :func:`evaluate`).

    ``ground_truths`` are the boxes evaluated (after :func:`~napari_faster_rcnn.core.data.boxes.usable_boxes`),
    ``dropped_boxes`` how many ground-truth boxes that rule left out;
    ``notes`` and ``warnings`` say what the user should know about the result.
    """

    voc: VOCResult
    coco: COCOResult
    images: int
    dropped_boxes: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ground_truths: list[Annotation] = field(default_factory=list, repr=False)

    @property
    def max_dets(self) -> int:
        """The most detections per image that COCO mAP counted."""
        return self.coco.max_dets

    def to_dict(self) -> dict:
        """A JSON-ready summary; NaN becomes None."""
        voc, coco = self.voc, self.coco
        return _json_ready(
            {
                "images": self.images,
                "iou_threshold": voc.iou_threshold,
                "voc_map": voc.map,
                "coco_map": coco.map,
                "coco_map50": coco.map50,
                "coco_map75": coco.map75,
                "max_dets": coco.max_dets,
                "dropped_boxes": self.dropped_boxes,
                "per_class": voc.per_class,
                "classes": {
                    name: {
                        "ap": voc.ap[name],
                        "coco_ap": coco.per_class.get(name, math.nan),
                        "ground_truth": voc.ground_truth_counts[name],
                        "predictions": voc.prediction_counts[name],
                    }
                    for name in voc.classes
                },
                "notes": list(self.notes),
                "warnings": list(self.warnings),
            }
        )


def evaluate(
    ground_truths: Sequence[Annotation],
    predictions: Sequence[Annotation],
    iou_threshold: float = 0.5,
    classes: Sequence[str] | None = None,
    image_sizes: Sequence | None = None,
    max_dets: int | None = None,
    names: Sequence[str] | None = None,
) -> Evaluation:
    """:func:`voc_evaluation` and :func:`coco_evaluation` of the same predictions, with what to know about them.

    Parameters
    ----------
    ground_truths, predictions, iou_threshold, classes
        As :func:`voc_evaluation`.
    image_sizes
        ``(height, width)`` of each image, or None (per image or for all) where
        unknown. Ground-truth boxes follow training's rule
        (:func:`~napari_faster_rcnn.core.data.boxes.usable_boxes`: clipped to
        the image, dropped without area); with sizes known, predicted boxes
        reaching beyond their image are warned about (predictions of other
        images paired by name).
    max_dets
        The most detections per image COCO mAP counts (per image and class,
        as COCO applies it); by default the largest number of detections of
        any image, at least 100 (COCO's own cap).
        A warning says when the cap cuts detections.
    names
        The images' names, for messages.
    """
    check_aligned(ground_truths, predictions)
    count = len(ground_truths)
    sizes = list(image_sizes) if image_sizes is not None else [None] * count
    if len(sizes) != count:
        raise ValueError(f"{len(sizes)} image sizes for {count} images")
    names = list(names) if names is not None else [f"image {i}" for i in range(count)]
    resolution = resolve_labels(ground_truths, predictions, classes)
    notes, warnings = label_notes(ground_truths, predictions, classes, resolution=resolution)
    cleaned, dropped = [], 0
    for annotation, size in zip(ground_truths, sizes):
        boxes, keep, _ = usable_boxes(annotation.boxes, *(size if size is not None else (None, None)))
        dropped += int((~keep).sum())
        cleaned.append(Annotation(boxes, [label for label, kept in zip(annotation.labels, keep) if kept],
                                  classes=annotation.classes))
    if dropped:
        notes.append(f"{dropped} ground-truth box(es) with no area inside their image left out (as training does)")
    warnings.extend(_beyond_image(predictions, sizes, names))
    most = max((len(a) for a in predictions), default=0)
    max_dets = max(100, most) if max_dets is None else int(max_dets)
    if max_dets < 1:
        raise ValueError(f"max_dets must be at least 1, got {max_dets}")
    # COCO (pycocotools and faster-coco-eval alike) applies the cap per image and class
    predicted_labels = resolution.resolve(predictions)
    per_class = [np.unique(labels, return_counts=True)[1] if labels else np.zeros(0, int) for labels in predicted_labels]
    cut = sum(int(np.clip(counts - max_dets, 0, None).sum()) for counts in per_class)
    if cut:
        crowded = sum(bool((counts > max_dets).any()) for counts in per_class)
        warnings.append(
            f"COCO mAP counts at most {max_dets} detections per image and class (--max-dets): {cut} lower-scoring "
            f"detection(s) of {crowded} image(s) left out of it (up to {most} detections in one image)"
        )
    voc = voc_evaluation(cleaned, predictions, iou_threshold, classes)
    coco = coco_evaluation(cleaned, predictions, classes, max_dets)
    return Evaluation(voc=voc, coco=coco, images=count, dropped_boxes=dropped, notes=notes, warnings=warnings,
                      ground_truths=cleaned)


# Predicted boxes may reach this far beyond their image before it is taken for the predictions of
# another image (models clip their boxes to the image; resizing rounds by a fraction of a pixel).
_BEYOND_TOLERANCE = 1.0


def _beyond_image(predictions, sizes, names) -> list[str]:
    reaching = []
    for annotation, size, name in zip(predictions, sizes, names):
        if size is None or not len(annotation):
            continue
        height, width = size
        boxes = annotation.boxes
        beyond = ((boxes[:, 0] < -_BEYOND_TOLERANCE) | (boxes[:, 1] < -_BEYOND_TOLERANCE)
                  | (boxes[:, 2] > width + _BEYOND_TOLERANCE) | (boxes[:, 3] > height + _BEYOND_TOLERANCE))
        if beyond.any():
            first = boxes[int(np.flatnonzero(beyond)[0])]
            reaching.append((name, int(beyond.sum()), first, width, height))
    if not reaching:
        return []
    name, number, box, width, height = reaching[0]
    return [
        f"predicted boxes of {len(reaching)} image(s) reach beyond their image (e.g. {name}: {number} box(es), "
        f"one at x {box[0]:g}..{box[2]:g}, y {box[1]:g}..{box[3]:g} on an image of {width} x {height}): "
        "are these the predictions of other images with the same names?"
    ]


def _json_ready(value):
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
