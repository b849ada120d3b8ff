"""Evaluation of large images with thousands of boxes: the matching that compares only
overlapping boxes gives exactly what comparing every pair gives (a plain brute force
written here), and so does VOC AP on a crowded image."""

import math

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.evaluation.matching import best_matches, evaluation_classes, flatten
from napari_faster_rcnn.core.evaluation.metrics import voc_evaluation


def plain_iou(a, b):
    """IoU of two (x1, y1, x2, y2) boxes, operations in the same order as the library's."""
    width = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    height = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    intersection = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union if union > 0 else 0.0


def brute_best(truth, detections):
    """For each detection, every ground-truth box of its class compared: the first with the highest
    IoU, when that IoU is above 0; else (-1, None)."""
    by_label = {}
    for index, (box, label) in enumerate(zip(truth.boxes.tolist(), truth.labels)):
        by_label.setdefault(label, []).append((index, box))
    best = []
    for box, label in zip(detections.boxes.tolist(), detections.labels):
        chosen, chosen_iou = -1, 0.0
        for index, other in by_label.get(label, ()):
            iou = plain_iou(box, other)
            if iou > chosen_iou:
                chosen, chosen_iou = index, iou
        best.append((chosen, chosen_iou if chosen >= 0 else None))
    return best


def brute_voc(ground, predicted, threshold):
    """Greedy VOC matching over every pair: detections by descending score (ties in image, then box
    order), each to its best box of its class; a true positive when IoU >= threshold and the box is free."""
    order = sorted(((-float(score), image, k) for image, p in enumerate(predicted) for k, score in enumerate(p.scores)))
    best = [brute_best(g, p) for g, p in zip(ground, predicted)]
    taken = set()
    hits = [np.zeros(len(p), bool) for p in predicted]
    for _, image, k in order:
        index, iou = best[image][k]
        if iou is not None and iou >= threshold and (image, index) not in taken:
            taken.add((image, index))
            hits[image][k] = True
    return order, hits


def random_images(seed, images=6, classes=7, crowded=300):
    """Images of integer-cornered boxes (so that IoUs tie), some empty, one crowded; duplicated ground truth,
    detections copied from it, jittered, or anywhere; some without area."""
    rng = np.random.default_rng(seed)
    names = [f"c{k}" for k in range(classes)]
    ground, predicted = [], []
    for image in range(images):
        count = [0, crowded, int(rng.integers(1, 40))][image % 3]
        corners = rng.integers(0, 60 if count == crowded else 120, (count, 2)).astype(float)
        truth = np.column_stack([corners, corners + rng.integers(0, 30, (count, 2))])  # width 0 at times
        if count:
            truth[rng.random(count) < 0.1] = truth[0]  # the same box twice: equal IoUs
        truth_labels = [names[k] for k in rng.integers(0, classes, count)]
        found = rng.integers(0, max(count, 1), count * 2 if count else int(rng.integers(0, 5)))
        boxes = truth[found] + rng.integers(-3, 4, (len(found), 4)) if count else np.zeros((len(found), 4))
        anywhere = rng.random(len(found)) < 0.2
        corners = rng.integers(0, 150, (int(anywhere.sum()), 2))
        boxes[anywhere] = np.column_stack([corners, corners + rng.integers(1, 60, (len(corners), 2))])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])  # at times without area
        labels = [truth_labels[k] if count and rng.random() < 0.8 else names[int(rng.integers(0, classes))]
                  for k in found]
        ground.append(Annotation(truth, truth_labels))
        predicted.append(Annotation(boxes, labels, rng.integers(0, 5, len(found)) / 4))  # many equal scores
    return ground, predicted


@pytest.mark.parametrize("seed", range(4))
def test_best_match_equals_comparing_every_pair(seed):
    ground, predicted = random_images(seed)
    names, gt_labels, pred_labels = evaluation_classes(ground, predicted)
    class_id = {name: i for i, name in enumerate(names)}
    gt = flatten(ground, gt_labels, class_id)
    dt = flatten(predicted, pred_labels, class_id, with_scores=True)
    best_gt, best_iou = best_matches(gt, dt, len(names))
    expected_gt, expected_iou = [], []
    for image, (truth, detections) in enumerate(zip(ground, predicted)):
        for index, iou in brute_best(truth, detections):
            expected_gt.append(gt["starts"][image] + index if index >= 0 else -1)
            expected_iou.append(iou if iou is not None else -math.inf)
    assert best_gt.tolist() == expected_gt
    assert best_iou.tolist() == expected_iou  # exactly: the same arithmetic on the same pairs
    ties = sum(1 for p in predicted for k in range(len(p)) if (np.asarray(p.scores) == p.scores[k]).sum() > 1)
    assert ties > 100 and sum(len(g) == 0 for g in ground) >= 2


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("threshold", [0.5, 0.75])
def test_voc_true_positives_equal_the_greedy_matching_over_every_pair(seed, threshold):
    ground, predicted = random_images(seed + 10)
    result = voc_evaluation(ground, predicted, iou_threshold=threshold)
    _, hits = brute_voc(ground, predicted, threshold)
    for ours, expected in zip(result.true_positive, hits):
        assert ours.tolist() == expected.tolist()


def plain_ap(order, hits, ground, predicted, name):
    """All-point interpolated AP of one class from the ranked detections."""
    total = sum(label == name for g in ground for label in g.labels)
    flags = [hits[image][k] for _, image, k in order if predicted[image].labels[k] == name]
    recall, precision, found = [], [], 0
    for rank, hit in enumerate(flags, 1):
        found += hit
        recall.append(found / total)
        precision.append(found / rank)
    area, previous = 0.0, 0.0
    for i, r in enumerate(recall):
        if r > previous:
            area += (r - previous) * max(precision[i:])
            previous = r
    return area


def test_voc_ap_of_a_large_crowded_image_equals_the_brute_force():
    """One 2,000 x 2,000 image with 3,000 small boxes of 3 classes, touching and overlapping."""
    rng = np.random.default_rng(5)
    count, names = 3000, ["a", "b", "c"]
    corners = rng.uniform(0, 1980, (count, 2))
    truth = np.column_stack([corners, corners + rng.uniform(6, 30, (count, 2))])
    labels = [names[k] for k in rng.integers(0, 3, count)]
    found = rng.random(count) < 0.85
    boxes = truth[found] + rng.normal(0, 2, (int(found.sum()), 4))
    false = rng.uniform(0, 1980, (400, 2))
    boxes = np.concatenate([boxes, np.column_stack([false, false + rng.uniform(6, 300, (400, 2))])])
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    predicted_labels = [label for label, keep in zip(labels, found) if keep] + [names[k] for k in
                                                                                  rng.integers(0, 3, 400)]
    ground = [Annotation(truth, labels)]
    predicted = [Annotation(boxes, predicted_labels, np.round(rng.random(len(boxes)), 2))]
    result = voc_evaluation(ground, predicted)
    order, hits = brute_voc(ground, predicted, 0.5)
    assert result.true_positive[0].tolist() == hits[0].tolist()
    for name in names:
        assert result.ap[name] == pytest.approx(plain_ap(order, hits, ground, predicted, name), abs=1e-12)
    assert 0.5 < result.map < 0.95


def test_boxes_far_apart_and_of_very_different_sizes_are_matched_as_by_every_pair():
    """Coordinates up to 1e15 in 10 classes (too many grid bands to number: one band), and boxes from 1 px to
    1e13 (reaching too many bands: looked up over all of them)."""
    rng = np.random.default_rng(3)
    corners = rng.choice([0.0, 1e3, 1e15], (200, 2)) + rng.integers(0, 50, (200, 2))
    truth = np.column_stack([corners, corners + rng.choice([1.0, 8.0, 1e13], (200, 2))])
    source = rng.integers(0, 200, 300)
    boxes = truth[source] + rng.integers(-2, 3, (300, 4))
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    truth_labels = rng.integers(0, 10, 200)
    labels = np.where(rng.random(300) < 0.8, truth_labels[source], rng.integers(0, 10, 300))
    ground = [Annotation(truth, [str(k) for k in truth_labels])]
    predicted = [Annotation(boxes, [str(k) for k in labels], rng.random(300))]
    names, gt_labels, pred_labels = evaluation_classes(ground, predicted)
    class_id = {name: i for i, name in enumerate(names)}
    best_gt, best_iou = best_matches(flatten(ground, gt_labels, class_id),
                                     flatten(predicted, pred_labels, class_id, with_scores=True), len(names))
    expected = brute_best(ground[0], predicted[0])
    assert sum(index >= 0 for index, _ in expected) > 150
    assert best_gt.tolist() == [index for index, _ in expected]
    assert best_iou.tolist() == [iou if iou is not None else -math.inf for _, iou in expected]
