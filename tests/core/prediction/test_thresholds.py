"""Score threshold, per-class NMS and class filter over raw detections; thresholds files; accepting."""

import json

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms

from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE, Annotation
from napari_faster_rcnn.core.prediction.thresholds import (
    DetectionSet,
    Thresholds,
    accept_predictions,
    apply_thresholds,
    filter_detections,
    load_thresholds,
    save_thresholds,
)


def raw_detections(seed, images=20, per_image=60, classes=("a", "b", "c"), ties=False):
    """Clusters of overlapping boxes around a few objects per image, as a model with NMS off gives."""
    rng = np.random.default_rng(seed)
    annotations = []
    for _ in range(images):
        n = int(rng.integers(0, per_image + 1))
        centres = rng.uniform(20, 200, (4, 2))
        centre = centres[rng.integers(0, 4, n)] + rng.normal(0, 6, (n, 2))
        size = rng.uniform(15, 40, (n, 2))
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        scores = rng.choice([0.2, 0.5, 0.8], n) if ties else rng.random(n)
        labels = [classes[k] for k in rng.integers(0, len(classes), n)]
        annotations.append(Annotation(boxes, labels, scores))
    return annotations


def torchvision_reference(annotation, thresholds):
    """Score and class filter, then torchvision's batched_nms, written out directly."""
    keep = [i for i in range(len(annotation)) if annotation.scores[i] >= thresholds.score_threshold
            and (thresholds.classes is None or annotation.labels[i] in thresholds.classes)]
    if not keep or thresholds.nms_threshold >= 1:
        return keep
    ids = {name: k for k, name in enumerate(sorted(set(annotation.labels)))}
    kept = batched_nms(
        torch.tensor(annotation.boxes[keep]),
        torch.tensor(annotation.scores[keep]),
        torch.tensor([ids[annotation.labels[i]] for i in keep]),
        thresholds.nms_threshold,
    )
    return sorted(keep[i] for i in kept.tolist())


def test_hand_worked_image():
    annotation = Annotation(
        boxes=[[0, 0, 10, 10], [0, 0, 10, 16], [0, 0, 10, 10], [50, 50, 60, 60]],
        labels=["a", "a", "b", "a"],
        scores=[0.9, 0.8, 0.7, 0.3],
    )
    # box 1 overlaps box 0 (same class) with IoU 100 / 160 = 0.625; box 2 is another class
    assert filter_detections(annotation, 0.0, 0.5).tolist() == [0, 2, 3]
    assert filter_detections(annotation, 0.0, 0.7).tolist() == [0, 1, 2, 3]
    assert filter_detections(annotation, 0.0, 0.625).tolist() == [0, 1, 2, 3]  # suppressed only above it
    assert filter_detections(annotation, 0.5, 1.0).tolist() == [0, 1, 2]
    assert filter_detections(annotation, 0.0, 0.5, classes=["b"]).tolist() == [2]
    # without box 0, box 1 is no longer suppressed
    assert filter_detections(annotation, 0.0, 0.5, classes=["a"]).tolist() == [0, 3]
    assert filter_detections(Annotation(), 0.5, 0.5).tolist() == []
    assert len(annotation.select([])) == 0
    kept = apply_thresholds(annotation, Thresholds(0.5, 0.5))
    assert kept.labels == ["a", "b"] and kept.scores.tolist() == [0.9, 0.7]


@pytest.mark.parametrize("ties", [False, True])
def test_one_image_matches_torchvision(ties):
    for annotation in raw_detections(1, images=10, ties=ties):
        for thresholds in [Thresholds(0.0, 0.5), Thresholds(0.3, 0.3), Thresholds(0.6, 0.8, ("a", "c"))]:
            assert apply_thresholds(annotation, thresholds) == annotation.select(
                torchvision_reference(annotation, thresholds)
            )


@pytest.mark.parametrize("ties", [False, True])
def test_whole_set_matches_each_image_filtered_alone(ties):
    raw = raw_detections(2, images=30, ties=ties)
    detections = DetectionSet(raw)
    assert detections.size == sum(len(a) for a in raw) and len(detections) == 30
    for thresholds in [
        Thresholds(0.0, 0.5),
        Thresholds(0.5, 0.5),  # the cached NMS result, another score threshold
        Thresholds(0.2, 0.3, ("b",)),
        Thresholds(0.0, 1.0),
        Thresholds(0.9, 0.05, ()),
    ]:
        everything = detections.filtered(thresholds)
        for index, annotation in enumerate(raw):
            assert everything[index] == apply_thresholds(annotation, thresholds)
            assert detections.filtered_image(index, thresholds) == everything[index]
        assert detections.keep_mask(thresholds).sum() == sum(len(a) for a in everything)


def test_thresholds_file_round_trip_and_errors(tmp_path):
    thresholds = Thresholds(score_threshold=0.35, nms_threshold=0.45, classes=["head"])
    path = save_thresholds(tmp_path, thresholds)
    assert path == tmp_path / THRESHOLDS_FILE
    assert json.loads(path.read_text()) == {"score_threshold": 0.35, "nms_threshold": 0.45, "classes": ["head"]}
    assert load_thresholds(tmp_path) == thresholds
    assert load_thresholds(tmp_path / "nowhere") is None
    path.write_text('{"score_threshold": 2}')
    with pytest.raises(ValueError, match=f"{THRESHOLDS_FILE}.*score_threshold must be a number from 0 to 1"):
        load_thresholds(tmp_path)
    path.write_text('{"score": 0.5}')
    with pytest.raises(ValueError, match="unknown keys"):
        load_thresholds(tmp_path)
    path.write_text("not json")
    with pytest.raises(ValueError, match="not a thresholds file"):
        load_thresholds(tmp_path)


def test_a_thresholds_file_is_not_taken_for_an_annotation(tmp_path):
    from napari_faster_rcnn.core.data.annotations import save_annotation
    from napari_faster_rcnn.core.data.folders import discover_dataset

    save_annotation(tmp_path / "predictions" / "a.pt", Annotation([[0, 0, 1, 1]], ["1"], [0.5]))
    save_thresholds(tmp_path / "predictions", Thresholds())
    dataset = discover_dataset(tmp_path / "predictions")
    assert [s.name for s in dataset.samples] == ["a"] and dataset.skipped == []


def test_accepting_maps_classes_and_never_duplicates():
    labels = Annotation([[0, 0, 10, 10]], ["head"], classes=["head"])
    predictions = Annotation(
        [[0.5, 0, 10, 10], [0, 0, 10, 10], [30, 30, 40, 40], [31, 30, 41, 40]],
        ["1", "2", "1", "1"],
        [0.9, 0.8, 0.7, 0.6],
    )
    merged, added = accept_predictions(labels, predictions)
    # box 0 is the labeled head (IoU 0.95): skipped; box 1 is class "2", not a head: added as "2"
    assert added == 3
    assert merged.labels == ["head", "2", "head", "head"]
    assert merged.scores is None
    np.testing.assert_array_equal(merged.boxes[1:], predictions.boxes[1:])
    assert merged.classes == ["head", "2"]
    again, added_again = accept_predictions(merged, predictions)
    assert added_again == 0 and again == merged
    # a corrected box (moved half a pixel: IoU 0.82 with its prediction) still counts as labeled
    corrected = Annotation(merged.boxes + [0.5, 0.5, 0.5, 0.5], merged.labels, classes=merged.classes)
    assert accept_predictions(corrected, predictions)[1] == 0
