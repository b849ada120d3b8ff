"""Pascal VOC AP against hand-worked cases and an independent plain implementation; COCO mAP."""

import math
import random

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.evaluation.coco import coco_evaluation
from napari_faster_rcnn.core.evaluation.matching import map_labels
from napari_faster_rcnn.core.evaluation.metrics import average_precision, evaluate, voc_evaluation


def gt(boxes, labels):
    return Annotation(boxes, labels)


def det(boxes, labels, scores):
    return Annotation(boxes, labels, scores)


NONE = Annotation(np.zeros((0, 4)), [], np.zeros(0))


# --- hand-worked cases -------------------------------------------------------------


def test_hand_worked_two_classes_with_a_duplicate_and_an_unknown_class():
    ground = [
        gt([[0, 0, 10, 10], [20, 20, 30, 30]], ["a", "b"]),
        gt([], []),
        gt([[5, 5, 15, 15]], ["a"]),
    ]
    predicted = [
        det([[0, 0, 10, 10], [0, 0, 9, 10], [21, 21, 30, 30]], ["a", "a", "c"], [0.9, 0.8, 0.7]),
        det([[1, 1, 3, 3]], ["a"], [0.95]),
        NONE,
    ]
    result = voc_evaluation(ground, predicted)
    # class a, ranked: 0.95 (image 1, no ground truth: FP), 0.9 (IoU 1: TP), 0.8 (IoU 0.9 with the
    # taken box: FP). precision 0, 1/2, 1/3; recall 0, 1/2, 1/2 of 2 boxes.
    # Monotone precision 1/2 up to recall 1/2, then 0: AP = 1/2 * 1/2 = 0.25.
    assert result.ap["a"] == pytest.approx(0.25)
    np.testing.assert_allclose(result.curves["a"].precision, [0, 1 / 2, 1 / 3])
    np.testing.assert_allclose(result.curves["a"].recall, [0, 0.5, 0.5])
    assert result.ap["b"] == 0.0  # ground truth but no detection
    assert math.isnan(result.ap["c"])  # detected but not in the ground truth: no AP, all false positives
    assert result.map == pytest.approx(0.125)  # over a and b only
    assert result.per_class == {"a": pytest.approx(0.25), "b": 0.0}
    assert [t.tolist() for t in result.true_positive] == [[True, False, False], [False], []]
    assert [m.tolist() for m in result.matched_ground_truth] == [[0, -1, -1], [-1], []]
    assert [m.tolist() for m in result.matched] == [[True, False], [], [False]]
    assert result.ground_truth_counts == {"a": 2, "b": 1, "c": 0}
    assert result.prediction_counts == {"a": 3, "b": 0, "c": 1}


def test_perfect_predictions_score_one():
    ground = [gt([[0, 0, 10, 10], [30, 30, 50, 60]], ["x", "y"]), gt([[5, 5, 9, 9]], ["x"])]
    predicted = [det(g.boxes, g.labels, np.linspace(0.9, 0.5, len(g))) for g in ground]
    result = voc_evaluation(ground, predicted)
    assert result.ap == {"x": 1.0, "y": 1.0} and result.map == 1.0
    coco = coco_evaluation(ground, predicted)
    assert (coco.map, coco.map50, coco.map75) == (pytest.approx(1.0),) * 3


def test_ties_keep_the_order_of_the_images():
    # one ground-truth box in image 1; equal scores: a false positive in image 0, a hit in image 1
    ground = [gt([], []), gt([[0, 0, 10, 10]], ["a"])]
    predicted = [det([[50, 50, 60, 60]], ["a"], [0.5]), det([[0, 0, 10, 10]], ["a"], [0.5])]
    # ranked FP then TP: precision 0, 1/2 at recall 0, 1 -> AP 0.5
    assert voc_evaluation(ground, predicted).ap["a"] == pytest.approx(0.5)
    # the other image order ranks the hit first: AP 1
    assert voc_evaluation(ground[::-1], predicted[::-1]).ap["a"] == pytest.approx(1.0)


def test_ties_within_an_image_keep_the_order_of_the_detections():
    ground = [gt([[0, 0, 10, 10]], ["a"])]
    first_wrong = det([[50, 50, 60, 60], [0, 0, 10, 10]], ["a", "a"], [0.5, 0.5])
    first_right = det([[0, 0, 10, 10], [50, 50, 60, 60]], ["a", "a"], [0.5, 0.5])
    assert voc_evaluation(ground, [first_wrong]).ap["a"] == pytest.approx(0.5)
    assert voc_evaluation(ground, [first_right]).ap["a"] == pytest.approx(1.0)


def test_iou_at_the_threshold_counts_and_uses_continuous_coordinates():
    ground = [gt([[0, 0, 10, 10]], ["a"])]
    # IoU exactly 100 / 200 = 0.5: a true positive at 0.5
    assert voc_evaluation(ground, [det([[0, 0, 10, 20]], ["a"], [1.0])], 0.5).ap["a"] == 1.0
    # [5, 0, 15, 10]: 50 / 150 = 1/3 on continuous coordinates (0.375 with the old +1 pixel)
    shifted = [det([[5, 0, 15, 10]], ["a"], [1.0])]
    assert voc_evaluation(ground, shifted, 0.34).ap["a"] == 0.0
    assert voc_evaluation(ground, shifted, 0.33).ap["a"] == 1.0


def test_a_detection_whose_best_box_is_taken_is_false_even_if_another_box_is_free():
    ground = [gt([[0, 0, 10, 10], [0, 0, 10, 12]], ["a", "a"])]
    # the second detection overlaps box 0 most (IoU 0.98, taken) and box 1 with IoU 0.85 (free)
    predicted = [det([[0, 0, 10, 10], [0, 0, 10, 10.2]], ["a", "a"], [0.9, 0.8])]
    result = voc_evaluation(ground, predicted)
    assert result.true_positive[0].tolist() == [True, False]
    assert result.matched[0].tolist() == [True, False]
    assert result.ap["a"] == pytest.approx(0.5)  # precision 1 up to recall 1/2


def test_integer_labels_are_resolved_against_the_class_list():
    assert map_labels(["1", "head", "2", "cat", "0"], ["head"]) == ["head", "head", "2", "cat", "0"]
    assert map_labels(["2", "1"], ["cat", "dog"]) == ["dog", "cat"]
    # a class whose name is a number is that class, not an index
    assert map_labels(["2", "1"], ["7", "2"]) == ["2", "7"]
    ground = [gt([[0, 0, 10, 10]], ["head"])]
    predicted = [det([[0, 0, 10, 10]], ["1"], [0.9])]
    assert voc_evaluation(ground, predicted).ap == {"head": 1.0}  # the ground truth's class list by default
    result = voc_evaluation(ground, [det([[0, 0, 10, 10]], ["2"], [0.9])], classes=["cat", "head"])
    assert result.ap["head"] == 1.0 and math.isnan(result.ap["cat"])


def test_average_precision_all_point_interpolation():
    # recall 0.2, 0.4, 0.4, 0.6 with precision 1, 1, 0.67, 0.75: the dip at 0.67 is lifted to 0.75
    recall = np.array([0.2, 0.4, 0.4, 0.6])
    precision = np.array([1.0, 1.0, 2 / 3, 0.75])
    assert average_precision(recall, precision) == pytest.approx(0.2 + 0.2 + 0.2 * 0.75)


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="2 ground-truth annotations but 1"):
        voc_evaluation([NONE, NONE], [NONE])
    with pytest.raises(ValueError, match="image 0 have no scores"):
        voc_evaluation([NONE], [gt([[0, 0, 1, 1]], ["a"])])
    with pytest.raises(ValueError, match="IoU threshold"):
        voc_evaluation([NONE], [NONE], iou_threshold=0)


def test_nothing_to_evaluate_gives_nan_not_an_error():
    result = evaluate([NONE, NONE], [NONE, det([[0, 0, 1, 1]], ["x"], [0.3])])
    assert math.isnan(result.voc.map) and math.isnan(result.coco.map)
    summary = result.to_dict()
    assert summary["voc_map"] is None and summary["per_class"] == {}
    assert summary["classes"]["x"] == {"ap": None, "coco_ap": None, "ground_truth": 0, "predictions": 1}


# --- COCO -----------------------------------------------------------------------


def test_coco_hand_worked_iou_between_thresholds():
    # IoU 0.72: a hit at 0.50 ... 0.70 (5 of the 10 thresholds), a miss from 0.75 on
    ground = [gt([[0, 0, 100, 100]], ["a"])]
    result = coco_evaluation(ground, [det([[0, 0, 100, 72]], ["a"], [0.9])])
    assert result.map == pytest.approx(0.5)
    assert result.map50 == pytest.approx(1.0) and result.map75 == pytest.approx(0.0)
    assert result.per_class == {"a": pytest.approx(0.5)}


def test_coco_agrees_with_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ground, predicted, classes = random_case(random.Random(7), images=12, classes=3)
    ours = coco_evaluation(ground, predicted, classes)

    images = [{"id": i + 1} for i in range(len(ground))]
    annotations, results = [], []
    for image, (g, p) in enumerate(zip(ground, predicted)):
        for box, label in zip(g.boxes, g.labels):
            x1, y1, x2, y2 = box.tolist()
            annotations.append({"id": len(annotations) + 1, "image_id": image + 1,
                                "category_id": classes.index(label) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        for box, label, score in zip(p.boxes, p.labels, p.scores):
            x1, y1, x2, y2 = box.tolist()
            results.append({"image_id": image + 1, "category_id": classes.index(label) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    reference = COCO()
    reference.dataset = {"images": images, "annotations": annotations,
                         "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}
    reference.createIndex()
    evaluator = COCOeval(reference, reference.loadRes(results), "bbox")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert ours.map == pytest.approx(evaluator.stats[0], abs=1e-6)
    assert ours.map50 == pytest.approx(evaluator.stats[1], abs=1e-6)
    assert ours.map75 == pytest.approx(evaluator.stats[2], abs=1e-6)


# --- randomized cross-check against a plain implementation ------------------------------


def plain_iou(a, b):
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    intersection = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union if union > 0 else 0.0


def plain_voc(ground, predicted, threshold):
    """VOC 2010+ AP written from the rules, one class, image and detection at a time."""
    classes = []
    for annotation in list(ground) + list(predicted):
        for label in annotation.labels:
            if label not in classes:
                classes.append(label)
    ap, flags = {}, {}
    found = [[False] * len(annotation) for annotation in ground]
    for name in classes:
        detections = []
        for image, annotation in enumerate(predicted):
            for j in range(len(annotation)):
                if annotation.labels[j] == name:
                    detections.append((float(annotation.scores[j]), image, j))
        detections.sort(key=lambda d: -d[0])  # Python's sort is stable: ties keep image, then detection order
        positives = sum(label == name for annotation in ground for label in annotation.labels)
        taken = [[False] * len(annotation) for annotation in ground]
        hits = []
        for _, image, j in detections:
            box = predicted[image].boxes[j].tolist()
            best, best_iou = -1, -1.0
            for g in range(len(ground[image])):
                if ground[image].labels[g] != name:
                    continue
                overlap = plain_iou(box, ground[image].boxes[g].tolist())
                if overlap > best_iou:
                    best, best_iou = g, overlap
            hit = best >= 0 and best_iou >= threshold and not taken[image][best]
            if hit:
                taken[image][best] = True
                found[image][best] = True
            hits.append(hit)
            flags[(image, j)] = hit
        if positives == 0:
            ap[name] = math.nan
            continue
        recall, precision, true_count = [], [], 0
        for k, hit in enumerate(hits):
            true_count += hit
            recall.append(true_count / positives)
            precision.append(true_count / (k + 1))
        points = [0.0] + recall + [1.0]
        envelope = [0.0] + precision + [0.0]
        for i in range(len(envelope) - 2, -1, -1):
            envelope[i] = max(envelope[i], envelope[i + 1])
        ap[name] = sum(
            (points[i] - points[i - 1]) * envelope[i] for i in range(1, len(points)) if points[i] != points[i - 1]
        )
    with_ground_truth = [value for value in ap.values() if not math.isnan(value)]
    mean = sum(with_ground_truth) / len(with_ground_truth) if with_ground_truth else math.nan
    return ap, mean, flags, found


def random_case(rng, images=None, classes=None):
    n_images = images or rng.randint(1, 8)
    names = [f"class{k}" for k in range(classes or rng.randint(1, 4))]
    ground, predicted = [], []
    for _ in range(n_images):
        boxes, labels = [], []
        for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):  # images without boxes are common
            x, y = rng.uniform(0, 80), rng.uniform(0, 80)
            boxes.append([x, y, x + rng.uniform(2, 30), y + rng.uniform(2, 30)])
            labels.append(rng.choice(names))
        if boxes and rng.random() < 0.2:  # two identical ground-truth boxes: ties in IoU
            boxes.append(list(boxes[0]))
            labels.append(labels[0])
        ground.append(gt(boxes, labels))
        found, found_labels, scores = [], [], []
        for _ in range(rng.choice([0, 1, 3, 6])):
            if boxes and rng.random() < 0.7:  # near a true box, sometimes exactly on it, sometimes twice
                k = rng.randrange(len(boxes))
                jitter = 0 if rng.random() < 0.3 else 4
                box = [v + rng.uniform(-jitter, jitter) for v in boxes[k]]
                box = [min(box[0], box[2] - 0.5), min(box[1], box[3] - 0.5), box[2], box[3]]
                label = labels[k] if rng.random() < 0.85 else rng.choice(names)
            else:
                x, y = rng.uniform(0, 80), rng.uniform(0, 80)
                box, label = [x, y, x + rng.uniform(2, 30), y + rng.uniform(2, 30)], rng.choice(names)
            copies = 2 if rng.random() < 0.15 else 1  # duplicate detections
            for _ in range(copies):
                found.append(box)
                found_labels.append(label)
                scores.append(rng.choice([0.25, 0.5, 0.75, 0.9]) if rng.random() < 0.5 else rng.random())  # ties
        predicted.append(det(found, found_labels, scores) if found else NONE)
    if rng.random() < 0.3:  # a class that is only predicted
        predicted[0] = det(
            np.concatenate([predicted[0].boxes, [[1, 1, 9, 9]]]), predicted[0].labels + ["ghost"],
            np.concatenate([predicted[0].scores, [0.6]]),
        )
    return ground, predicted, names


@pytest.mark.parametrize("seed", range(150))
def test_agrees_with_a_plain_implementation(seed):
    rng = random.Random(seed)
    ground, predicted, _ = random_case(rng)
    threshold = rng.choice([0.3, 0.5, 0.75])
    result = voc_evaluation(ground, predicted, threshold)
    ap, mean, flags, found = plain_voc(ground, predicted, threshold)
    assert set(result.ap) == set(ap)
    for name in ap:
        if math.isnan(ap[name]):
            assert math.isnan(result.ap[name])
        else:
            assert abs(result.ap[name] - ap[name]) <= 1e-6, name
    assert (math.isnan(mean) and math.isnan(result.map)) or abs(result.map - mean) <= 1e-6
    for (image, j), hit in flags.items():
        assert bool(result.true_positive[image][j]) == hit
    assert [m.tolist() for m in result.matched] == found


# --- labels, ground truth without area, predictions beyond their image (issue 11) ---------------


def test_integer_ground_truth_labels_resolve_through_the_class_list_its_files_carry():
    ground = [Annotation([[0, 0, 10, 10], [20, 20, 30, 30]], ["1", "2"], classes=["cat", "dog"])]
    predicted = [det([[0, 0, 10, 10], [20, 20, 30, 30]], ["cat", "dog"], [0.9, 0.8])]
    result = evaluate(ground, predicted)
    assert result.voc.per_class == {"cat": 1.0, "dog": 1.0} and result.warnings == []
    assert result.notes == ["integer ground-truth labels read as class numbers of the ground truth's class list: "
                            "1=cat, 2=dog"]


def test_a_numbers_only_class_list_gives_way_to_one_with_names():
    # training on numbered files makes the classes "1", "2"; its model's predictions then name them
    ground = [Annotation([[0, 0, 10, 10]], ["2"], classes=["1", "2"])]
    predicted = [Annotation([[0, 0, 10, 10]], ["dog"], [0.9], classes=["cat", "dog"])]
    assert evaluate(ground, predicted).voc.per_class == {"dog": 1.0}


def test_ground_truth_without_area_is_left_out_and_evaluation_reports_it():
    ground = [gt([[0, 0, 10, 10], [5, 5, 5, 9], [50, 50, 60, 60]], ["a", "a", "a"])]
    predicted = [det([[0, 0, 10, 10]], ["a"], [0.9])]
    assert evaluate(ground, predicted).voc.map == pytest.approx(0.5)  # the box outside is unknown without a size
    result = evaluate(ground, predicted, image_sizes=[(40, 40)])
    assert result.voc.map == 1.0 and result.dropped_boxes == 2 and result.to_dict()["dropped_boxes"] == 2
    assert len(result.ground_truths[0]) == 1 and result.voc.matched[0].tolist() == [True]


def test_predictions_beyond_their_image_are_named_in_a_warning():
    ground = [gt([[0, 0, 10, 10]], ["a"]), gt([[0, 0, 10, 10]], ["a"])]
    predicted = [det([[0, 0, 10, 10]], ["a"], [0.9]), det([[0, 0, 10, 10], [30, 0, 60, 10]], ["a", "a"], [0.9, 0.5])]
    result = evaluate(ground, predicted, image_sizes=[(20, 40), (20, 40)], names=["a", "b"])
    assert len(result.warnings) == 1 and "b: 1 box(es)" in result.warnings[0] and "40 x 20" in result.warnings[0]
    assert evaluate(ground, predicted, image_sizes=[(20, 40), None]).warnings == []
