"""Calibrated thresholds against a brute-force search over every score threshold and NMS IoU."""

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou, nms

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import usable_boxes
from napari_faster_rcnn.core.prediction import nms_pairs
from napari_faster_rcnn.core.prediction.calibration import calibrate
from napari_faster_rcnn.core.prediction.nms_pairs import greedy_nms, nms_edges, nms_survivors
from napari_faster_rcnn.core.prediction.thresholds import DetectionSet, Thresholds, apply_thresholds

CLASSES = ("cat", "dog")
NMS = (0.3, 0.5, 0.7, 1.0)


def scene(seed, images=8):
    """Ground truth and raw detections: jittered copies of the objects (duplicates), wrong classes,
    false boxes, scores on a coarse grid (ties)."""
    rng = np.random.default_rng(seed)
    truths, raws = [], []
    for _ in range(images):
        count = int(rng.integers(0, 5))
        xy = rng.uniform(0, 80, (count, 2))
        wh = rng.uniform(8, 25, (count, 2))
        truth = Annotation(np.hstack([xy, xy + wh]), list(rng.choice(CLASSES, count)))
        boxes, labels, scores = [], [], []
        for box, label in zip(truth.boxes, truth.labels):
            for _ in range(int(rng.integers(0, 4))):
                boxes.append(box + rng.normal(0, 2.5, 4))
                labels.append(label if rng.random() < 0.8 else str(rng.choice(CLASSES)))
                scores.append(rng.uniform(0.05, 1))
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.uniform(0, 90, 2)
            boxes.append([x, y, x + rng.uniform(5, 20), y + rng.uniform(5, 20)])
            labels.append(str(rng.choice(CLASSES)))
            scores.append(rng.uniform(0.05, 0.8))
        boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        raws.append(Annotation(boxes, labels, np.round(np.array(scores), 2)))
        truths.append(truth)
    return truths, raws


def tied_scene(seed, images=10):
    """Many ties: exact duplicate detections (IoU 1), halves of boxes and boxes sharing edges on a 2-pixel
    grid (IoUs that equal the NMS and matching thresholds exactly), duplicate ground truth, scores from a
    handful of values."""
    rng = np.random.default_rng(seed)
    truths, raws = [], []
    for _ in range(images):
        count = int(rng.integers(0, 6))
        xy = rng.integers(0, 20, (count, 2)) * 2.0
        wh = rng.integers(2, 8, (count, 2)) * 2.0
        boxes = np.hstack([xy, xy + wh])
        if count > 1 and rng.random() < 0.5:
            boxes[1] = boxes[0]  # the same object labeled twice
        labels = list(rng.choice(CLASSES, count))
        truths.append(Annotation(boxes, labels))
        raw, raw_labels = [], []
        for box, label in zip(boxes, labels):
            for _ in range(int(rng.integers(0, 5))):
                if rng.random() < 0.25:  # the left half: IoU 0.5 with its box, exactly the matching threshold
                    raw.append([box[0], box[1], (box[0] + box[2]) / 2, box[3]])
                else:
                    raw.append(box + rng.integers(-2, 3, 4) * 2.0 * (rng.random() < 0.6))
                raw_labels.append(label if rng.random() < 0.85 else str(rng.choice(CLASSES)))
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.integers(0, 24, 2) * 2.0
            raw.append([x, y, x + 8, y + 8])
            raw_labels.append(str(rng.choice(CLASSES)))
        raw = np.array(raw, dtype=np.float64).reshape(-1, 4)
        raw[:, 2:] = np.maximum(raw[:, 2:], raw[:, :2] + 2)
        if len(raw) > 2:
            raw[-1], raw_labels[-1] = raw[0], raw_labels[0]  # an exact duplicate
        raws.append(Annotation(raw, raw_labels, rng.choice([0.1, 0.3, 0.5, 0.9], len(raw))))
    return truths, raws


# --- the brute force: every threshold applied, matched greedily by score, image by image -------


def kept_of(raw, label, score, nms_threshold):
    """The detections of ``label`` at ``score`` and above after greedy NMS (torchvision), best first."""
    mine = [i for i, name in enumerate(raw.labels) if name == label and raw.scores[i] >= score]
    if not mine:
        return []
    boxes = torch.as_tensor(raw.boxes[mine])
    scores = torch.as_tensor(raw.scores[mine])
    if nms_threshold < 1.0:
        order = nms(boxes, scores, nms_threshold).tolist()
    else:
        order = sorted(range(len(mine)), key=lambda i: (-raw.scores[mine[i]], i))
    return [mine[i] for i in order]


def true_positives(truth, raw, label, kept):
    gt = [i for i, name in enumerate(truth.labels) if name == label]
    taken, hits = set(), 0
    for index in kept:  # best first
        if not gt:
            break
        iou = box_iou(torch.as_tensor(raw.boxes[[index]]), torch.as_tensor(truth.boxes[gt]))[0].numpy()
        best = int(np.argmax(iou))
        if iou[best] >= 0.5 and best not in taken:
            taken.add(best)
            hits += 1
    return hits


def brute_force(truths, raws, objective):
    """The best objective over every NMS value and every score threshold of each class."""
    values = brute_force_by_nms(truths, raws, objective).values()
    return max(values) if objective == "f1" else min(values)


def brute_force_by_nms(truths, raws, objective, nms_values=NMS):
    """Per NMS value, the best objective over every score threshold of each class."""
    by_nms = {}
    for nms_threshold in nms_values:
        values = []
        for label in CLASSES:
            truth_count = sum(t.labels.count(label) for t in truths)
            if truth_count == 0:
                continue
            scores = sorted({float(s) for r in raws for s, n in zip(r.scores, r.labels) if n == label})
            options = []
            for score in [*scores, 2.0]:  # 2.0 keeps nothing
                kept = [kept_of(r, label, score, nms_threshold) for r in raws]
                if objective == "f1":
                    tp = sum(true_positives(t, r, label, k) for t, r, k in zip(truths, raws, kept))
                    options.append(2 * tp / (sum(map(len, kept)) + truth_count))
                else:
                    options.append(sum(abs(len(k) - t.labels.count(label)) for t, k in zip(truths, kept)))
            values.append(max(options) if objective == "f1" else min(options))
        by_nms[nms_threshold] = np.mean(values) if objective == "f1" else sum(values)
    return by_nms


def f1_of(truths, raws, thresholds):
    """Macro F1 of the detections that pass ``thresholds`` (brute-force matching)."""
    values = []
    for label in CLASSES:
        truth_count = sum(t.labels.count(label) for t in truths)
        if truth_count == 0:
            continue
        score = thresholds.score_threshold_of(label)
        kept = [kept_of(r, label, score, thresholds.nms_threshold) for r in raws]
        tp = sum(true_positives(t, r, label, k) for t, r, k in zip(truths, raws, kept))
        values.append(2 * tp / (sum(map(len, kept)) + truth_count))
    return float(np.mean(values))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_matches_a_brute_force_search_over_every_threshold(seed):
    truths, raws = scene(seed)
    result = calibrate(truths, raws, "f1", nms_candidates=NMS)
    assert result.value == pytest.approx(brute_force(truths, raws, "f1"), abs=1e-6)
    # and the thresholds written give that F1 when applied as predict applies them
    assert f1_of(truths, raws, result.thresholds) == pytest.approx(result.value, abs=1e-6)
    assert set(dict(result.thresholds.class_score_thresholds)) <= set(CLASSES)
    assert result.thresholds.nms_threshold in NMS


@pytest.mark.parametrize("seed", [0, 3])
def test_count_matches_a_brute_force_search(seed):
    truths, raws = scene(seed)
    result = calibrate(truths, raws, "count", nms_candidates=NMS)
    assert result.value == brute_force(truths, raws, "count")
    # the counts of the thresholded predictions give that error
    applied = [apply_thresholds(r, result.thresholds) for r in raws]
    error = sum(abs(a.labels.count(c) - t.labels.count(c)) for a, t in zip(applied, truths) for c in CLASSES)
    assert error == result.value


@pytest.mark.parametrize("seed", [0, 1])
def test_ties_and_duplicates_match_the_brute_force_at_every_nms_value(seed):
    truths, raws = tied_scene(seed)
    for objective in ("f1", "count"):
        result = calibrate(truths, raws, objective, nms_candidates=NMS)
        expected = brute_force_by_nms(truths, raws, objective)
        assert result.by_nms == pytest.approx(expected, abs=1e-6)


def test_crowded_images_take_the_grid_with_the_same_result(monkeypatch):
    truths, raws = tied_scene(2, images=12)
    swept = calibrate(truths, raws, "f1", nms_candidates=NMS).to_dict()
    monkeypatch.setattr(nms_pairs, "_DENSE_PAIRS", 0)  # every pair found counts as crowded
    assert calibrate(truths, raws, "f1", nms_candidates=NMS).to_dict() == swept


def test_boxes_outside_their_image_are_clipped_and_dropped_as_evaluation_does():
    truths, raws = scene(4, images=10)
    sizes = [(40, 60) if i % 3 else None for i in range(len(truths))]
    cleaned = []
    for truth, size in zip(truths, sizes):
        boxes, keep, _ = usable_boxes(truth.boxes, *(size or (None, None)))
        cleaned.append(Annotation(boxes, [label for label, kept in zip(truth.labels, keep) if kept]))
    assert sum(map(len, cleaned)) < sum(map(len, truths))  # some are dropped
    result = calibrate(truths, raws, "f1", nms_candidates=NMS, image_sizes=sizes)
    assert result.value == pytest.approx(brute_force(cleaned, raws, "f1"), abs=1e-6)


def test_nms_at_every_value_at_once_is_torchvisions_with_ties():
    _, raws = tied_scene(3, images=30)
    detections = DetectionSet(raws)
    key = np.repeat(np.arange(len(raws)), [len(r) for r in raws]) * 2 + np.array(
        [CLASSES.index(n) for r in raws for n in r.labels], dtype=np.int64)
    rank = np.empty(detections.size, dtype=np.int64)
    rank[np.argsort(-detections.scores, kind="stable")] = np.arange(detections.size)
    values = (0.0, 0.2, 1 / 3, 0.5, 0.6, 0.75, 0.9, 1.0)
    kept = nms_survivors(nms_edges(detections.boxes, key, rank), detections.size, values)
    for value in values:
        np.testing.assert_array_equal(kept[value], detections.nms_mask(value), err_msg=f"NMS {value}")


def test_perfect_detections_give_f1_one_and_drop_the_false_ones():
    truth = Annotation([[0, 0, 10, 10], [20, 20, 30, 30]], ["cat", "cat"])
    raw = Annotation([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60], [0.5, 0, 10, 10]], ["cat"] * 4,
                     np.array([0.9, 0.8, 0.3, 0.7]))
    result = calibrate([truth], [raw], "f1")
    assert result.value == 1.0
    assert result.per_class["cat"]["f1"] == 1.0
    assert len(apply_thresholds(raw, result.thresholds)) == 2
    # the threshold lies between the last detection kept and the next one below
    assert 0.3 < result.thresholds.score_threshold_of("cat") < 0.8


def test_the_vectorized_nms_is_torchvisions():
    truths, raws = scene(5, images=20)
    detections = DetectionSet(raws)
    for threshold in (0.2, 0.5, 0.8):
        key = np.repeat(np.arange(len(raws)), [len(r) for r in raws]) * 2 + np.array(
            [CLASSES.index(n) for r in raws for n in r.labels], dtype=np.int64)
        rank = np.empty(detections.size, dtype=np.int64)
        rank[np.argsort(-detections.scores, kind="stable")] = np.arange(detections.size)
        mine = greedy_nms(nms_edges(detections.boxes, key, rank), rank, threshold)
        np.testing.assert_array_equal(mine, detections.nms_mask(threshold))


def test_bad_input_is_refused_with_the_reason():
    truth = Annotation([[0, 0, 10, 10]], ["cat"])
    raw = Annotation([[0, 0, 10, 10]], ["cat"], np.array([0.9]))
    with pytest.raises(ValueError, match="objective"):
        calibrate([truth], [raw], "accuracy")
    with pytest.raises(ValueError, match="no box"):
        calibrate([Annotation(np.zeros((0, 4)), [])], [raw])
    with pytest.raises(ValueError, match="no scores"):
        calibrate([truth], [Annotation([[0, 0, 10, 10]], ["cat"])])


def test_class_thresholds_round_trip_and_filter_per_class():
    thresholds = Thresholds(0.5, 0.5, None, {"cat": 0.2})
    assert Thresholds.from_dict(thresholds.to_dict()) == thresholds
    assert Thresholds(0.5, 0.5).to_dict() == {"score_threshold": 0.5, "nms_threshold": 0.5, "classes": None}
    raw = Annotation([[0, 0, 10, 10], [20, 20, 30, 30]], ["cat", "dog"], np.array([0.3, 0.3]))
    assert apply_thresholds(raw, thresholds).labels == ["cat"]
    assert DetectionSet([raw]).keep_mask(thresholds).tolist() == [True, False]
    with pytest.raises(ValueError, match="class_score_thresholds"):
        Thresholds(0.5, 0.5, None, {"cat": 1.5})


def test_no_detections_keep_nothing_and_other_classes_get_a_note():
    truth = [Annotation([[0, 0, 10, 10]], ["cat"])]
    empty = calibrate(truth, [Annotation(np.zeros((0, 4)), [], np.zeros(0))])
    assert empty.value == 0.0 and empty.per_class["cat"]["predictions"] == 0
    other = calibrate(truth, [Annotation([[0, 0, 10, 10], [0, 0, 10, 10]], ["cat", "dog"], np.array([0.9, 0.02]))])
    assert other.value == 1.0 and any("no ground truth in these images" in note for note in other.notes)
