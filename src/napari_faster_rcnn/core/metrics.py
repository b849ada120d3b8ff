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
    re-implementation of pycocotools), with COCO's rules (101 recall points, at
    most 100 detections per image).

Labels
    Ground truth usually names its classes (``"head"``) while a model's raw
    output may carry class ids as text (``"1"``). Both are resolved against one
    class list, in class-id order (id = position + 1, 0 being torchvision's
    background): a label that is a name in the list is that class; a decimal
    integer ``k`` that is not a name in the list is the ``k``-th class; anything
    else is a class of its own (absent from the ground truth, so its detections
    are all false positives). The list is the ``classes`` argument, by default
    the ground truth's class list (the ``classes`` the files carry, then labels
    in order of appearance). Pass ``classes`` explicitly when predictions carry
    ids and the ground truth does not carry the training's class list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .annotations import Annotation, class_list

# Pairs (detection, ground truth of its class in its image) are computed in
# chunks of at most this many, to bound memory on crowded images.
_PAIR_CHUNK = 1 << 22


# --- labels -------------------------------------------------------------------


def map_labels(labels: Sequence[str], classes: Sequence[str]) -> list[str]:
    """Resolve labels against a class list (see the module docstring).

    Examples
    --------
    >>> map_labels(["1", "head", "2", "cat"], ["head"])
    ['head', 'head', '2', 'cat']
    """
    lookup = _label_lookup(set(labels), classes)
    return [lookup[label] for label in labels]


def _label_lookup(labels, classes: Sequence[str]) -> dict[str, str]:
    names = set(classes)
    lookup = {}
    for label in labels:
        if label in names:
            lookup[label] = label
        elif label.isdecimal() and 1 <= int(label) <= len(classes):
            lookup[label] = classes[int(label) - 1]
        else:
            lookup[label] = label
    return lookup


def evaluation_classes(
    ground_truths: Sequence[Annotation], predictions: Sequence[Annotation], classes: Sequence[str] | None = None
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """The class list of an evaluation and every image's labels resolved against it.

    Returns ``(classes, ground_truth_labels, prediction_labels)``: the class
    list (the given or ground-truth classes first, then classes only the
    predictions name) and the resolved labels, per image.
    """
    _check_aligned(ground_truths, predictions)
    base = list(dict.fromkeys(classes)) if classes is not None else class_list(ground_truths)
    # labels in order of appearance, so classes only predicted come in a stable order
    seen = dict.fromkeys(label for a in (*ground_truths, *predictions) for label in a.labels)
    lookup = _label_lookup(seen, base)
    gt_labels = [[lookup[label] for label in a.labels] for a in ground_truths]
    pred_labels = [[lookup[label] for label in a.labels] for a in predictions]
    known = set(base)
    extra = dict.fromkeys(name for name in map(lookup.get, seen) if name not in known)
    return base + list(extra), gt_labels, pred_labels


def _check_aligned(ground_truths, predictions) -> None:
    if len(ground_truths) != len(predictions):
        raise ValueError(
            f"{len(ground_truths)} ground-truth annotations but {len(predictions)} prediction annotations; "
            "give one of each per image, in the same order"
        )
    for index, prediction in enumerate(predictions):
        if prediction.scores is None and len(prediction):
            raise ValueError(f"predictions of image {index} have no scores; detections are ranked by score")


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

    gt = _flatten(ground_truths, gt_labels, class_id)
    dt = _flatten(predictions, pred_labels, class_id, with_scores=True)
    best_gt, best_iou = _best_matches(gt, dt, n_classes)

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


def _flatten(annotations, labels, class_id, with_scores=False) -> dict:
    counts = np.array([len(a) for a in annotations], dtype=np.int64)
    flat = {
        "boxes": np.concatenate([a.boxes for a in annotations]) if annotations else np.zeros((0, 4)),
        "classes": np.fromiter((class_id[label] for image in labels for label in image), np.int64, int(counts.sum())),
        "images": np.repeat(np.arange(len(annotations)), counts),
        "starts": np.concatenate([[0], np.cumsum(counts)]),
    }
    if with_scores:
        scores = [a.scores if a.scores is not None else np.zeros(0) for a in annotations]
        flat["scores"] = np.concatenate(scores) if scores else np.zeros(0)
    return flat


def _best_matches(gt: dict, dt: dict, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """For each detection, the ground-truth box (global index) of its class in its
    image with the highest IoU, and that IoU; -1 and -inf when there is none."""
    n_dt = len(dt["classes"])
    best_gt = np.full(n_dt, -1, dtype=np.int64)
    best_iou = np.full(n_dt, -np.inf)
    if n_dt == 0 or len(gt["classes"]) == 0:
        return best_gt, best_iou
    gt_key = gt["images"] * n_classes + gt["classes"]
    gt_order = np.argsort(gt_key, kind="stable")  # stable: boxes of a group keep their order in the image
    sorted_keys = gt_key[gt_order]
    dt_key = dt["images"] * n_classes + dt["classes"]
    first = np.searchsorted(sorted_keys, dt_key, side="left")
    count = np.searchsorted(sorted_keys, dt_key, side="right") - first
    pair_ends = np.cumsum(count)
    start = 0
    while start < n_dt:
        # detections [start, stop) whose pairs fit in one chunk (at least one detection)
        limit = (pair_ends[start - 1] if start else 0) + _PAIR_CHUNK
        stop = max(start + 1, int(np.searchsorted(pair_ends, limit, side="right")))
        _match_chunk(gt, dt, gt_order, first, count, start, stop, best_gt, best_iou)
        start = stop
    return best_gt, best_iou


def _match_chunk(gt, dt, gt_order, first, count, start, stop, best_gt, best_iou) -> None:
    counts = count[start:stop]
    has = np.flatnonzero(counts) + start
    if len(has) == 0:
        return
    counts = count[has]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    within = np.arange(int(counts.sum())) - np.repeat(offsets, counts)
    pair_dt = np.repeat(has, counts)
    pair_gt = gt_order[np.repeat(first[has], counts) + within]
    iou = _paired_iou(dt["boxes"][pair_dt], gt["boxes"][pair_gt])
    maxima = np.maximum.reduceat(iou, offsets)
    # the first pair (in the image's box order) reaching the maximum
    position = np.where(iou == np.repeat(maxima, counts), np.arange(len(iou)), len(iou))
    chosen = np.minimum.reduceat(position, offsets)
    best_gt[has] = pair_gt[chosen]
    best_iou[has] = maxima


def _paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    intersection = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / union, 0.0)


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


# --- COCO ---------------------------------------------------------------------


@dataclass
class COCOResult:
    """The result of :func:`coco_evaluation`.

    ``map`` is mAP@[.5:.95]; ``per_class`` is AP@[.5:.95] per class name (NaN
    for a class without ground truth); ``stats`` is the library's full summary.
    Values are NaN where COCO has nothing to average (no ground truth at all).
    """

    map: float
    map50: float
    map75: float
    per_class: dict[str, float]
    stats: dict[str, float] = field(repr=False)


def coco_evaluation(
    ground_truths: Sequence[Annotation],
    predictions: Sequence[Annotation],
    classes: Sequence[str] | None = None,
) -> COCOResult:
    """COCO box mAP through ``faster-coco-eval`` (arguments as :func:`voc_evaluation`)."""
    from faster_coco_eval import COCO, COCOeval_faster

    names, gt_labels, pred_labels = evaluation_classes(ground_truths, predictions, classes)
    class_id = {name: i + 1 for i, name in enumerate(names)}
    gt = _flatten(ground_truths, gt_labels, class_id)
    dt = _flatten(predictions, pred_labels, class_id, with_scores=True)
    images = [{"id": i + 1, "width": 0, "height": 0} for i in range(len(ground_truths))]
    xywh = _xywh(gt["boxes"])
    annotations = [
        {"id": k + 1, "image_id": int(image) + 1, "category_id": int(category), "bbox": box,
         "area": box[2] * box[3], "iscrowd": 0}
        for k, (image, category, box) in enumerate(zip(gt["images"], gt["classes"], xywh.tolist()))
    ]
    categories = [{"id": i, "name": name} for name, i in class_id.items()]
    silent = lambda *args, **kwargs: None  # noqa: E731 - the library prints progress otherwise
    ground = COCO({"images": images, "annotations": annotations, "categories": categories}, print_function=silent)
    results = np.column_stack([dt["images"] + 1, _xywh(dt["boxes"]), dt["scores"], dt["classes"]]).astype(np.float64)
    detected = ground.loadRes(results if len(results) else [])
    evaluator = COCOeval_faster(ground, detected, iouType="bbox", print_function=silent)
    evaluator.params.catIds = sorted(class_id.values())
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = {key: _nan_if_missing(value) for key, value in evaluator.stats_as_dict.items()}
    # precision: [IoU thresholds, recall points, classes, area ranges, max detections]
    precision = np.asarray(evaluator.eval["precision"])
    per_class = {}
    for k, name in enumerate(names):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        per_class[name] = float(values.mean()) if values.size else math.nan
    return COCOResult(
        map=stats["AP_all"], map50=stats["AP_50"], map75=stats["AP_75"], per_class=per_class, stats=stats
    )


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])


def _nan_if_missing(value: float) -> float:
    return math.nan if value < 0 else float(value)


# --- both ---------------------------------------------------------------------


@dataclass
class Evaluation:
    """VOC and COCO results of one set of predictions (see :func:`evaluate`)."""

    voc: VOCResult
    coco: COCOResult
    images: int

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
            }
        )


def evaluate(
    ground_truths: Sequence[Annotation],
    predictions: Sequence[Annotation],
    iou_threshold: float = 0.5,
    classes: Sequence[str] | None = None,
) -> Evaluation:
    """:func:`voc_evaluation` and :func:`coco_evaluation` of the same predictions."""
    voc = voc_evaluation(ground_truths, predictions, iou_threshold, classes)
    coco = coco_evaluation(ground_truths, predictions, classes)
    return Evaluation(voc=voc, coco=coco, images=len(ground_truths))


def _json_ready(value):
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# --- folders ------------------------------------------------------------------


@dataclass
class EvaluationFolders:
    """Ground truth and predictions read from two folders, paired by file name (sorted)."""

    names: list[str]
    ground_truths: list[Annotation]
    predictions: list[Annotation]
    notes: list[str] = field(default_factory=list)  # what was left out, for the user


def load_evaluation_folders(ground_truth_folder, prediction_folder) -> EvaluationFolders:
    """Read a ground-truth dataset folder and a folder of predictions, paired by file name.

    Every image of the ground truth that has an annotation file is evaluated;
    one without a prediction file counts as predicted empty (its objects are
    missed). Prediction files without ground truth are left out. Both are
    listed in ``notes``.

    Raises
    ------
    ValueError
        (``DatasetError``, ``AnnotationError``) naming the folder or file: no
        ground truth, no file name in common, an unreadable file, a prediction
        without scores.
    """
    from .annotations import load_annotation
    from .dataset import DatasetError, discover_dataset

    truth = discover_dataset(ground_truth_folder)
    predicted = discover_dataset(prediction_folder)
    truth_files = {s.name: s.annotation for s in truth.samples if s.annotation is not None}
    predicted_files = {s.name: s.annotation for s in predicted.samples if s.annotation is not None}
    if not truth_files:
        raise DatasetError(truth.root, "no ground-truth annotation files")
    names = sorted(truth_files)
    if not set(names) & set(predicted_files):
        raise DatasetError(
            predicted.root, f"no prediction file is named after an image of {truth.root} (e.g. {names[0]}.pt)"
        )
    notes = []
    unlabeled = sum(s.annotation is None for s in truth.samples)
    if unlabeled:
        notes.append(f"{unlabeled} image(s) of {truth.root} have no annotation file and were left out")
    missing = [name for name in names if name not in predicted_files]
    if missing:
        notes.append(f"{len(missing)} image(s) have no prediction file and count as predicting nothing: "
                     + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    extra = sorted(set(predicted_files) - set(truth_files))
    if extra:
        notes.append(f"{len(extra)} prediction file(s) have no ground truth and were left out: "
                     + ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else ""))
    for path, reason in [*truth.skipped, *predicted.skipped]:
        notes.append(f"skipped {path}: {reason}")
    ground_truths = [load_annotation(truth_files[name]) for name in names]
    predictions = []
    for name in names:
        if name not in predicted_files:
            predictions.append(Annotation(np.zeros((0, 4)), [], np.zeros(0)))
            continue
        annotation = load_annotation(predicted_files[name])
        if annotation.scores is None and len(annotation):
            raise ValueError(f"{predicted_files[name]}: predictions need scores (a 'scores' key), to be ranked")
        predictions.append(annotation)
    return EvaluationFolders(names, ground_truths, predictions, notes)
