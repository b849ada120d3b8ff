"""What a run tells a person: the small-validation warning's limits and the summary's wording of
what is missing (no validation, a class without ground truth)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from napari_faster_rcnn.core.training.summary import DataSplit, PartCounts, RunSummary, data_warnings, summary_lines


def split(images: int, boxes: int) -> DataSplit:
    return DataSplit("a folder", PartCounts(40, 2, 90), PartCounts(images, 1, boxes))


@pytest.mark.parametrize(("images", "boxes", "warned"), [(9, 40, True), (10, 19, True), (10, 20, False),
                                                         (30, 60, False), (1, 0, True), (1, 199, True),
                                                         (1, 547, False), (3, 200, False)])
def test_validation_is_small_below_10_images_or_20_boxes_unless_crowded(images, boxes, warned):
    """One astronomy image of 547 stars validates; 9 photos of 40 heads do not."""
    warnings = data_warnings(split(images, boxes))
    assert bool(warnings) == warned
    if warned:
        noun = "image" if images == 1 else "images"
        assert warnings[0].startswith(f"validation holds only {images} {noun} and {boxes} boxes")
    assert data_warnings(split(images, boxes), validation=False) == []  # nothing validates: nothing to trust


def test_a_run_without_validation_and_a_class_without_ground_truth_are_said_so(tmp_path):
    last = tmp_path / "last.ckpt"
    without = RunSummary(None, last, None, None, {}, 12, ["a"], validation=False, split=split(30, 60))
    assert summary_lines(without) == [
        "best checkpoint: none (the run did not validate)",
        f"last checkpoint: {last} (step 12)",
        "trained on 40 images (2 without boxes), 90 boxes",
    ]
    metrics = {"val/voc_map": 0.5, "val/coco_map": 0.25, "val/ap/a": 0.5, "val/coco_ap/a": 0.25,
               "val/ap/b": math.nan, "val/coco_ap/b": math.nan}
    best = Path("best.ckpt")
    lines = summary_lines(RunSummary(best, last, 3, 40, metrics, 50, ["a", "b"], iou_threshold=0.75))
    assert lines[:5] == [f"best checkpoint: {best} (epoch 3, step 40)", f"last checkpoint: {last} (step 50)",
                         "best epoch's validation: VOC AP@0.75 0.500, COCO mAP 0.250",
                         "  a: VOC AP@0.75 0.500, COCO mAP 0.250", "  b: VOC AP@0.75 n/a, COCO mAP n/a"]
