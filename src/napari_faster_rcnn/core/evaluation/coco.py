"""COCO box mAP through faster-coco-eval (the C++ re-implementation of pycocotools).

See :mod:`.metrics` for how labels are resolved; :func:`coco_evaluation` is
re-exported there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import connected_components

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.evaluation.matching import evaluation_classes, flatten, overlapping_pairs

# An image with more boxes than this (ground truth and detections) goes to the library in parts.
SPLIT_SIZE = 400
# Boxes linked by at least this IoU stay in one part: below COCO's lowest threshold (0.5), with room for rounding.
_LINK_IOU = 0.4


@dataclass
class COCOResult:
    """The result of :func:`coco_evaluation`.

    ``map`` is mAP@[.5:.95]; ``per_class`` is AP@[.5:.95] per class name (NaN
    for a class without ground truth); ``stats`` is the library's full summary;
    ``max_dets`` the most detections counted per image (the highest scoring).
    Values are NaN where COCO has nothing to average (no ground truth at all).
    """

    map: float
    map50: float
    map75: float
    per_class: dict[str, float]
    max_dets: int
    stats: dict[str, float] = field(repr=False)


def coco_evaluation(
    ground_truths: Sequence[Annotation],
    predictions: Sequence[Annotation],
    classes: Sequence[str] | None = None,
    max_dets: int = 100,
    split_size: int = SPLIT_SIZE,
) -> COCOResult:
    """COCO box mAP through ``faster-coco-eval`` (arguments as :func:`voc_evaluation`).

    At most ``max_dets`` detections per image count, the highest scoring (COCO's
    own default is 100; :func:`~.metrics.evaluate` raises it to fit the data).

    The library compares every detection with every ground-truth box of its
    image and class, which is quadratic in the boxes of an image. An image with
    more than ``split_size`` boxes (ground truth and detections counted
    together) is therefore passed to it as several images, each holding whole
    groups of boxes linked by an IoU of at least 0.4 (below COCO's lowest
    threshold, 0.5), so that no pair that COCO could match is separated. That
    gives the same AP as one image because we apply the per-image cap ourselves
    first and hand the library the detections' ranks as scores (descending
    score, ties in image then box order, as pycocotools ranks them). Only the
    summary's recall at 1 and 10 detections per image (``stats``) would count
    per part: those entries are NaN when an image was split.
    """
    max_dets = int(max_dets)
    if max_dets < 1:
        raise ValueError(f"max_dets must be at least 1, got {max_dets}")
    from faster_coco_eval import COCO, COCOeval_faster

    names, gt_labels, pred_labels = evaluation_classes(ground_truths, predictions, classes)
    class_id = {name: i + 1 for i, name in enumerate(names)}
    gt = flatten(ground_truths, gt_labels, class_id)
    dt = flatten(predictions, pred_labels, class_id, with_scores=True)
    scores, kept = _ranks_within_cap(dt, len(class_id) + 1, max_dets)
    gt_image, dt_image, split = _sub_images(gt, dt, kept, len(class_id) + 1, split_size)
    images = [{"id": i + 1, "width": 0, "height": 0} for i in range(int(max(gt_image.max(initial=-1),
                                                                           dt_image.max(initial=-1))) + 1)]
    if not images:
        images = [{"id": 1, "width": 0, "height": 0}]
    xywh = _xywh(gt["boxes"])
    annotations = [
        {"id": k + 1, "image_id": int(image) + 1, "category_id": int(category), "bbox": box,
         "area": box[2] * box[3], "iscrowd": 0}
        for k, (image, category, box) in enumerate(zip(gt_image, gt["classes"], xywh.tolist()))
    ]
    categories = [{"id": i, "name": name} for name, i in class_id.items()]
    silent = lambda *args, **kwargs: None  # noqa: E731 - the library prints progress otherwise
    ground = COCO({"images": images, "annotations": annotations, "categories": categories}, print_function=silent)
    results = np.column_stack(
        [dt_image + 1, _xywh(dt["boxes"][kept]), scores[kept], dt["classes"][kept]]
    ).astype(np.float64)
    detected = ground.loadRes(results if len(results) else [])
    evaluator = COCOeval_faster(ground, detected, iouType="bbox", print_function=silent)
    evaluator.params.catIds = sorted(class_id.values())
    # the summary's AP reads the last cap; per_class below reads the same one (index -1)
    evaluator.params.maxDets = [1, 10, max_dets]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = {key: _nan_if_missing(value) for key, value in evaluator.stats_as_dict.items()}
    if split:  # recall at 1 and 10 detections per image would count them per part of a split image
        for key in ("AR_all", "AR_second") if max_dets == 100 else ("AR_1", "AR_10"):
            if key != f"AR_{max_dets}" and key in stats:
                stats[key] = math.nan
    # precision: [IoU thresholds, recall points, classes, area ranges, max detections]
    precision = np.asarray(evaluator.eval["precision"])
    per_class = {}
    for k, name in enumerate(names):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        per_class[name] = float(values.mean()) if values.size else math.nan
    return COCOResult(
        map=stats["AP_all"], map50=stats["AP_50"], map75=stats["AP_75"], per_class=per_class, max_dets=max_dets,
        stats=stats
    )


def _ranks_within_cap(dt: dict, n_keys: int, max_dets: int) -> tuple[np.ndarray, np.ndarray]:
    """Every detection's rank as a score (higher first: descending score, ties in image
    then box order, as pycocotools ranks them) and whether it is within the first
    ``max_dets`` of its image and class."""
    count = len(dt["scores"])
    ranked = np.argsort(-dt["scores"], kind="stable")
    scores = np.empty(count)
    scores[ranked] = np.arange(count, 0, -1, dtype=np.float64)
    key = (dt["images"] * n_keys + dt["classes"])[ranked]
    grouped = ranked[np.argsort(key, kind="stable")]  # by image and class, then rank
    sorted_key = key[np.argsort(key, kind="stable")]
    first = np.searchsorted(sorted_key, sorted_key, side="left")
    kept = np.zeros(count, dtype=bool)
    kept[grouped[np.arange(count) - first < max_dets]] = True
    return scores, kept


def _sub_images(gt: dict, dt: dict, kept: np.ndarray, n_keys: int, split_size: int):
    """The image (0-based, parts of split images numbered in turn) each ground-truth
    box and each kept detection goes to the library in, and whether any image was split."""
    n_gt = len(gt["images"])
    dt_index = np.flatnonzero(kept)
    node_image = np.concatenate([gt["images"], dt["images"][dt_index]]).astype(np.int64)
    n_images = int(node_image.max(initial=-1)) + 1
    sizes = np.bincount(node_image, minlength=n_images)
    large = sizes > split_size
    if not large.any():
        return gt["images"].astype(np.int64), dt["images"][dt_index].astype(np.int64), False
    # link each detection to the ground truth it may match, in the large images
    in_large = large[node_image]
    gt_part = np.flatnonzero(in_large[:n_gt])
    dt_part = np.flatnonzero(in_large[n_gt:])
    first_u, first_v = [], []
    gt_key = gt["images"][gt_part] * n_keys + gt["classes"][gt_part]
    dt_key = dt["images"][dt_index[dt_part]] * n_keys + dt["classes"][dt_index[dt_part]]
    for pair_dt, pair_gt, iou in overlapping_pairs(gt["boxes"][gt_part], gt_key,
                                                   dt["boxes"][dt_index[dt_part]], dt_key):
        linked = iou >= _LINK_IOU
        first_u.append(gt_part[pair_gt[linked]])
        first_v.append(n_gt + dt_part[pair_dt[linked]])
    u = np.concatenate(first_u) if first_u else np.zeros(0, np.int64)
    v = np.concatenate(first_v) if first_v else np.zeros(0, np.int64)
    links = scipy.sparse.coo_array((np.ones(len(u), dtype=bool), (u, v)), shape=(len(node_image),) * 2)
    component = connected_components(links, directed=False)[1]
    # per image, its components (numbered in the order of their first node) packed in turn into parts of about split_size boxes
    order = np.lexsort((component, node_image))
    image_sorted, component_sorted = node_image[order], component[order]
    image_start = np.searchsorted(image_sorted, image_sorted, side="left")
    component_start = np.flatnonzero(np.r_[True, (component_sorted[1:] != component_sorted[:-1])
                                            | (image_sorted[1:] != image_sorted[:-1])])
    before = np.repeat(component_start, np.diff(np.r_[component_start, len(order)])) - image_start
    part = np.zeros(len(order), dtype=np.int64)
    part[order] = np.where(large[image_sorted], before // split_size, 0)
    parts = np.zeros(n_images, dtype=np.int64)
    np.maximum.at(parts, node_image, part + 1)
    offset = np.concatenate([[0], np.cumsum(parts)[:-1]])
    image = offset[node_image] + part
    return image[:n_gt], image[n_gt:], True


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])


def _nan_if_missing(value: float) -> float:
    return math.nan if value < 0 else float(value)
