"""COCO box mAP through faster-coco-eval (the C++ re-implementation of pycocotools).

See :mod:`.metrics` for how labels are resolved; :func:`coco_evaluation` is
re-exported there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.evaluation.matching import evaluation_classes, flatten


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
) -> COCOResult:
    """COCO box mAP through ``faster-coco-eval`` (arguments as :func:`voc_evaluation`).

    At most ``max_dets`` detections per image count, the highest scoring (COCO's
    own default is 100; :func:`~.metrics.evaluate` raises it to fit the data).
    """
    max_dets = int(max_dets)
    if max_dets < 1:
        raise ValueError(f"max_dets must be at least 1, got {max_dets}")
    from faster_coco_eval import COCO, COCOeval_faster

    names, gt_labels, pred_labels = evaluation_classes(ground_truths, predictions, classes)
    class_id = {name: i + 1 for i, name in enumerate(names)}
    gt = flatten(ground_truths, gt_labels, class_id)
    dt = flatten(predictions, pred_labels, class_id, with_scores=True)
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
    # the summary's AP reads the last cap; per_class below reads the same one (index -1)
    evaluator.params.maxDets = [1, 10, max_dets]
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
        map=stats["AP_all"], map50=stats["AP_50"], map75=stats["AP_75"], per_class=per_class, max_dets=max_dets,
        stats=stats
    )


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])


def _nan_if_missing(value: float) -> float:
    return math.nan if value < 0 else float(value)
