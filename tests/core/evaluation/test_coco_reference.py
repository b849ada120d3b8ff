"""COCO mAP, per class too, against pycocotools as an independent reference; crowded images (> 100 objects)."""

import contextlib
import io
import math

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.evaluation.coco import coco_evaluation
from napari_faster_rcnn.core.evaluation.metrics import evaluate


def pycocotools_evaluation(ground, predicted, classes, max_dets=100, only_class=None):
    """mAP@[.5:.95], @0.5, @0.75 of pycocotools' COCOeval; with ``only_class``, evaluated on that class
    alone (its AP)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations, results = [], []
    for image, (truth, detections) in enumerate(zip(ground, predicted)):
        for box, label in zip(truth.boxes.tolist(), truth.labels):
            annotations.append({"id": len(annotations) + 1, "image_id": image + 1,
                                "category_id": classes.index(label) + 1,
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                "area": (box[2] - box[0]) * (box[3] - box[1]), "iscrowd": 0})
        for box, label, score in zip(detections.boxes.tolist(), detections.labels, detections.scores.tolist()):
            results.append({"image_id": image + 1, "category_id": classes.index(label) + 1,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": score})
    reference = COCO()
    reference.dataset = {"images": [{"id": i + 1} for i in range(len(ground))], "annotations": annotations,
                         "categories": [{"id": i + 1, "name": name} for i, name in enumerate(classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        reference.createIndex()
        evaluator = COCOeval(reference, reference.loadRes(results), "bbox")
        evaluator.params.maxDets = [1, 10, max_dets]
        if only_class is not None:
            evaluator.params.catIds = [classes.index(only_class) + 1]
        evaluator.evaluate()
        evaluator.accumulate()
    # pycocotools' own summary reads mAP@[.5:.95] at a cap of 100 whatever maxDets holds (-1 without a
    # 100 among them), so the means are taken here from its accumulated precision, at the last cap:
    # [IoU thresholds, recall points, classes, area ranges, caps]
    precision = evaluator.eval["precision"][:, :, :, 0, -1]

    def mean(values):
        values = values[values > -1]
        return float(values.mean()) if values.size else float("nan")

    return mean(precision), mean(precision[0]), mean(precision[5])  # all, IoU 0.5, IoU 0.75


def crowded_case(seed=0, images=3, classes=("cell", "debris")):
    """Images of 130-230 objects on a grid, predictions jittered off them, some missed, some false."""
    rng = np.random.default_rng(seed)
    ground, predicted = [], []
    for _ in range(images):
        count = int(rng.integers(130, 231))
        corners = np.stack(np.meshgrid(np.arange(16), np.arange(16)), -1).reshape(-1, 2)[:count] * 14.0
        boxes = np.column_stack([corners, corners + rng.uniform(6, 12, (count, 2))])
        labels = [classes[int(k)] for k in rng.integers(0, len(classes), count)]
        ground.append(Annotation(boxes, labels))
        found = rng.random(count) > 0.1
        jittered = boxes[found] + rng.normal(0, 1.0, (int(found.sum()), 4))
        jittered[:, 2:] = np.maximum(jittered[:, 2:], jittered[:, :2] + 1)
        false = rng.uniform(0, 200, (20, 2))
        false = np.column_stack([false, false + 8])
        boxes = np.concatenate([jittered, false])
        labels = [label for label, keep in zip(labels, found) if keep] + [classes[0]] * 20
        predicted.append(Annotation(boxes, labels, rng.random(len(boxes))))
    return ground, predicted, list(classes)


@pytest.mark.parametrize("max_dets", [None, 100, 30])
def test_coco_map_and_per_class_ap_agree_with_pycocotools_on_crowded_images(max_dets):
    ground, predicted, classes = crowded_case()
    result = evaluate(ground, predicted, classes=classes, max_dets=max_dets)
    largest = max(len(p) for p in predicted)
    assert largest > 150
    expected_cap = largest if max_dets is None else max_dets
    assert result.max_dets == result.to_dict()["max_dets"] == expected_cap
    stats = pycocotools_evaluation(ground, predicted, classes, expected_cap)
    assert result.coco.map == pytest.approx(stats[0], abs=1e-6)
    assert result.coco.map50 == pytest.approx(stats[1], abs=1e-6)
    assert result.coco.map75 == pytest.approx(stats[2], abs=1e-6)
    for name in classes:
        alone = pycocotools_evaluation(ground, predicted, classes, expected_cap, only_class=name)
        assert result.coco.per_class[name] == pytest.approx(alone[0], abs=1e-6), name
    cut = any("at most" in warning and "--max-dets" in warning for warning in result.warnings)
    assert cut == (max_dets is not None)


def test_the_default_cap_counts_every_detection_where_cocos_100_loses_them():
    ground, predicted, classes = crowded_case(seed=1)
    counted = evaluate(ground, predicted, classes=classes)
    capped = evaluate(ground, predicted, classes=classes, max_dets=100)
    assert counted.warnings == []
    assert capped.coco.map50 < counted.coco.map50 - 0.02  # the lowest-scoring true positives were cut
    assert "--max-dets" in capped.warnings[0]


def test_per_class_ap_agrees_with_pycocotools_class_by_class_at_cocos_cap():
    ground, predicted, classes = crowded_case(seed=2, images=4, classes=("a", "b", "c"))
    ours = coco_evaluation(ground, predicted, classes, max_dets=100)
    for name in classes:
        alone = pycocotools_evaluation(ground, predicted, classes, 100, only_class=name)
        assert ours.per_class[name] == pytest.approx(alone[0], abs=1e-6), name


def large_image_case(seed=0, count=2000, classes=20):
    """One 3,000 x 3,000 image with ``count`` small objects of ``classes`` classes, found with jitter, some
    missed, false positives; scores rounded so that many tie."""
    rng = np.random.default_rng(seed)
    names = [f"class{k}" for k in range(classes)]
    corners = rng.uniform(0, 2970, (count, 2))
    truth = np.column_stack([corners, corners + rng.uniform(6, 30, (count, 2))])
    labels = [names[k] for k in rng.integers(0, classes, count)]
    found = rng.random(count) < 0.85
    boxes = truth[found] + rng.normal(0, 2, (int(found.sum()), 4))
    false = rng.uniform(0, 2970, (300, 2))
    boxes = np.concatenate([boxes, np.column_stack([false, false + rng.uniform(6, 100, (300, 2))])])
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    predicted_labels = [label for label, keep in zip(labels, found) if keep] + [names[k] for k in
                                                                                  rng.integers(0, classes, 300)]
    scores = np.round(rng.random(len(boxes)), 2)
    return [Annotation(truth, labels)], [Annotation(boxes, predicted_labels, scores)], names


@pytest.mark.parametrize("max_dets", [None, 60])
def test_a_2000_box_image_agrees_with_pycocotools(max_dets):
    """The image is passed to faster-coco-eval in parts (it has more boxes than SPLIT_SIZE); the AP is
    pycocotools' on the whole image, with its cap per image and class, and with tied scores."""
    ground, predicted, classes = large_image_case()
    result = evaluate(ground, predicted, classes=classes, max_dets=max_dets)
    cap = result.max_dets
    assert cap == (len(predicted[0]) if max_dets is None else 60)
    stats = pycocotools_evaluation(ground, predicted, classes, cap)
    assert result.coco.map == pytest.approx(stats[0], abs=1e-9)
    assert result.coco.map50 == pytest.approx(stats[1], abs=1e-9)
    assert result.coco.map75 == pytest.approx(stats[2], abs=1e-9)
    assert 0.1 < stats[0] < 0.9
    assert math.isnan(result.coco.stats["AR_1"])  # recall at 1 detection would count per part


def test_parts_of_a_large_image_give_the_ap_of_the_whole():
    ground, predicted, classes = large_image_case(seed=1, classes=3)
    whole = coco_evaluation(ground, predicted, classes, max_dets=5000, split_size=10**9)
    parts = coco_evaluation(ground, predicted, classes, max_dets=5000, split_size=100)
    assert parts.per_class == pytest.approx(whole.per_class, abs=1e-12)
    for key in ("AP_all", "AP_50", "AP_75", "AP_small", "AP_medium", "AR_5000", "AR_50", "AR_75"):
        assert parts.stats[key] == pytest.approx(whole.stats[key], abs=1e-12, nan_ok=True), key
