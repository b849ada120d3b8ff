"""Anchor grids against torchvision's own AnchorGenerator, coverage against a brute-force IoU over
every anchor the model makes, and suggestions that reach boxes the defaults miss."""

import functools

import numpy as np
import pytest
import torch

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.model.anchor_suggestion import suggest_anchors
from napari_faster_rcnn.core.model.anchors import (
    anchor_boxes,
    anchor_centres,
    anchor_coverage,
    anchor_grids,
    anchors_at,
)
from napari_faster_rcnn.core.model.config import ModelConfig, preset
from napari_faster_rcnn.core.model.detector import build_model, feature_maps, padded_image_size

CLASSES = ("object",)
SMALL_FPN = ModelConfig(classes=CLASSES, backbone="resnet18", min_size=96, max_size=160)
CONFIGS = {
    # non-square, padded to 96 x 160: the pooled level's grid is 2 x 3, its anchors 48 and 53 px apart
    "resnet18-fpn": (SMALL_FPN, (100, 150)),
    "resnet18-fpn-layers-2-3": (SMALL_FPN.replace(returned_layers=[2, 3], min_size=80, max_size=200,
                                                  anchor_sizes=[[17, 23], [45, 61], [90, 130]],
                                                  aspect_ratios=[[0.3, 1.7]] * 3), (90, 200)),
    "cpu-preset": (preset("cpu", CLASSES), (120, 77)),
    "resnet18-no-fpn": (ModelConfig(classes=CLASSES, backbone="resnet18", fpn=False, min_size=100, max_size=300,
                                    anchor_sizes=[[21, 50, 77]], aspect_ratios=[[0.25, 1.0, 3.7]]), (64, 200)),
    "mobilenet-fpn": (ModelConfig(classes=CLASSES, backbone="mobilenet_v3_large", min_size=100, max_size=200),
                      (70, 130)),
}


@functools.lru_cache(maxsize=None)
def _model(config):
    return build_model(config, weights="none").eval()


def torchvision_anchors(config, image_size, boxes=None):
    """The anchors and (resized) boxes of one image, from the model's own transform, backbone and
    AnchorGenerator."""
    model = _model(config)
    height, width = image_size
    target = None if boxes is None else [{"boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                          "labels": torch.ones(len(boxes), dtype=torch.int64)}]
    with torch.no_grad():
        images, targets = model.transform([torch.zeros(3, height, width)], target)
        features = list(model.backbone(images.tensors).values())
        anchors = model.rpn.anchor_generator(images, features)[0].double().numpy()
    resized = None if targets is None else targets[0]["boxes"].double().numpy()
    return anchors, resized, tuple(images.tensors.shape[-2:]), [tuple(f.shape[-2:]) for f in features]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_anchors_are_torchvision_s(name):
    config, image_size = CONFIGS[name]
    reference, _, padded, grid_shapes = torchvision_anchors(config, image_size)
    assert padded == padded_image_size(config, image_size)

    per_map = anchor_boxes(config, image_size)
    np.testing.assert_array_equal(np.concatenate(per_map), reference)  # the same boxes in the same order
    grids = anchor_grids(config, image_size)
    assert [(grid.rows, grid.columns) for grid in grids] == grid_shapes
    assert [grid.name for grid in grids] == [feature_map.name for feature_map in feature_maps(config)]
    sizes, ratios = config.anchors()
    for grid, boxes, centres, map_sizes, map_ratios in zip(grids, per_map, anchor_centres(config, image_size),
                                                          sizes, ratios, strict=True):
        per_location = len(map_sizes) * len(map_ratios)
        assert len(centres) == grid.rows * grid.columns and len(boxes) == len(centres) * per_location
        np.testing.assert_array_equal((boxes[:, :2] + boxes[:, 2:]).reshape(len(centres), per_location, 2) / 2,
                                      np.repeat(centres[:, None], per_location, axis=1))
        # each anchor's size and ratio, as torchvision makes them before rounding
        width, height = grid.cell_anchors[:, 2] - grid.cell_anchors[:, 0], grid.cell_anchors[:, 3] - \
            grid.cell_anchors[:, 1]
        np.testing.assert_allclose(np.sqrt(width * height), grid.sizes, rtol=0.1, atol=1)
        np.testing.assert_allclose(height / width, grid.ratios, rtol=0.25)


@pytest.mark.parametrize("name", ["resnet18-fpn", "resnet18-no-fpn"])
def test_anchors_at_a_point_are_those_of_the_nearest_centre(name):
    config, image_size = CONFIGS[name]
    rng = np.random.default_rng(1)
    padded = padded_image_size(config, image_size)
    for point in [(0.0, 0.0), (padded[1] + 50.0, padded[0] + 50.0), *rng.uniform(0, 160, (5, 2))]:
        for grid, centres, at in zip(anchor_grids(config, image_size), anchor_centres(config, image_size),
                                     anchors_at(config, image_size, point), strict=True):
            distance = np.hypot(centres[:, 0] - point[0], centres[:, 1] - point[1])
            nearest = np.flatnonzero(np.isclose(distance, distance.min()))
            boxes = grid.boxes().reshape(len(centres), -1, 4)
            assert any(np.array_equal(at, boxes[index]) for index in nearest)


# --- coverage ---------------------------------------------------------------------------


def random_items(seed=0):
    """Images of three sizes with boxes of every scale, some crossing the border, one with no area."""
    rng = np.random.default_rng(seed)
    items = []
    for height, width in [(80, 120), (150, 90), (64, 64)]:
        centre = rng.uniform(0, [width, height], (7, 2))
        size = np.exp(rng.uniform(np.log(3), np.log(90), (7, 2)))
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        boxes[:, :2] = np.maximum(boxes[:, :2], -10)
        items.append(((height, width), Annotation(boxes, ["object"] * len(boxes))))
    flat = np.array([[10, 20, 10, 40], [5, 5, 30, 30]], dtype=float)  # the first has no width
    items.append(((70, 70), Annotation(flat, ["object", "object"])))
    items.append(((50, 60), Annotation()))  # an image without boxes
    return items


def brute_force(config, items):
    """Per box with an area: (image, box, best IoU), by plain loops over all of torchvision's anchors."""
    result = []
    for image, ((height, width), annotation) in enumerate(items):
        clipped = np.clip(annotation.boxes, 0, [width, height, width, height])
        keep = np.flatnonzero((clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1]))
        if len(keep) == 0:
            continue
        anchors, resized, _, _ = torchvision_anchors(config, (height, width), clipped[keep])
        for index, box in zip(keep, resized.tolist()):
            best = 0.0
            for anchor in anchors.tolist():
                overlap_x = min(box[2], anchor[2]) - max(box[0], anchor[0])
                overlap_y = min(box[3], anchor[3]) - max(box[1], anchor[1])
                if overlap_x <= 0 or overlap_y <= 0:
                    continue
                overlap = overlap_x * overlap_y
                union = (box[2] - box[0]) * (box[3] - box[1]) + (anchor[2] - anchor[0]) * (anchor[3] - anchor[1])
                best = max(best, overlap / (union - overlap))
            result.append((image, int(index), best))
    return result


@pytest.mark.parametrize("name", ["resnet18-fpn", "resnet18-no-fpn", "cpu-preset"])
def test_coverage_equals_a_brute_force_over_every_anchor(name):
    config, _ = CONFIGS[name]
    items = random_items()
    expected = brute_force(config, items)
    coverage = anchor_coverage(config, items)

    total = sum(len(annotation) for _, annotation in items)
    assert len(coverage) == len(expected) > 15 and coverage.images == 5
    assert coverage.degenerate == total - len(expected) >= 1  # the flat box, and any left outside its image
    assert list(zip(coverage.image.tolist(), coverage.box.tolist())) == [(i, b) for i, b, _ in expected]
    best = np.array([iou for _, _, iou in expected])
    np.testing.assert_allclose(coverage.best_iou, best, atol=1e-5)
    assert 0 < (best >= 0.5).sum() < len(best)  # the case has boxes on both sides
    for threshold in (0.7, 0.5, 0.3):
        assert coverage.share(threshold) == pytest.approx((best >= threshold).mean())
    unreached = coverage.unreached()
    assert sorted((i, b) for i, b, _ in unreached) == sorted((i, b) for i, b, iou in expected if iou < 0.5 - 1e-5)
    assert [iou for _, _, iou in unreached] == sorted(iou for _, _, iou in unreached)  # worst first
    summary = coverage.summary()
    assert summary["boxes"] == len(expected) and summary["unreached"] == len(unreached)
    assert summary["below_0.3"] == pytest.approx((best < 0.3).mean(), abs=1e-4)

    # the best anchor is one of the model's, on the map it names, with that IoU
    grids = anchor_grids(config, (80, 120))
    for position in coverage.in_image(0):
        anchor = coverage.best_anchor[position]
        boxes = grids[coverage.best_map[position]].boxes()
        assert (np.abs(boxes - anchor).max(axis=1) < 1e-9).any()
        box = coverage.boxes[position]
        overlap = (max(0, min(box[2], anchor[2]) - max(box[0], anchor[0]))
                   * max(0, min(box[3], anchor[3]) - max(box[1], anchor[1])))
        union = np.prod(box[2:] - box[:2]) + np.prod(anchor[2:] - anchor[:2]) - overlap
        assert overlap / union == pytest.approx(coverage.best_iou[position])


def test_coverage_without_boxes_and_bad_sizes():
    coverage = anchor_coverage(SMALL_FPN, [((40, 50), Annotation())])
    assert len(coverage) == 0 and np.isnan(coverage.share(0.5)) and coverage.unreached() == []
    assert coverage.summary()["iou_0.5"] is None
    with pytest.raises(ValueError, match="image 1 has the size"):
        anchor_coverage(SMALL_FPN, [((40, 50), Annotation()), ((0, 50), Annotation())])


# --- suggestions --------------------------------------------------------------------------


def tall_thin_items(seed=0):
    """Posts: boxes five to eight times taller than wide, 6 to 12 px wide, in 256 px images."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(12):
        width = rng.uniform(6, 12, 6)
        height = width * rng.uniform(5, 8, 6)
        x, y = rng.uniform(0, 256 - width), rng.uniform(0, 256 - height)
        boxes = np.stack([x, y, x + width, y + height], axis=1)
        items.append(((256, 256), Annotation(boxes, ["post"] * 6)))
    return items


@pytest.mark.parametrize("fpn", [True, False])
def test_suggestion_reaches_boxes_the_defaults_miss(fpn):
    config = ModelConfig(classes=CLASSES, backbone="resnet18", fpn=fpn, min_size=256, max_size=256,
                         returned_layers=None if fpn else [2])
    items = tall_thin_items()
    before = anchor_coverage(config, items)
    assert before.share(0.5) < 0.2  # 32 px and up, ratios 0.5 to 2: the posts are missed

    suggestion = suggest_anchors(config, items)
    maps = config.feature_map_count
    assert len(suggestion.sizes) == len(suggestion.ratios) == maps
    if fpn:  # one size per level
        assert all(len(sizes) == 1 for sizes in suggestion.sizes)
    else:
        assert len(suggestion.sizes[0]) == 5  # as many as the default has
    assert all(ratios == suggestion.ratios[0] and len(ratios) == 3 for ratios in suggestion.ratios)
    assert max(suggestion.ratios[0]) > 4  # tall anchors
    after = suggestion.coverage
    assert after.share(0.5) > 0.75 and after.share(0.7) > before.share(0.7) + 0.3
    assert after.best_iou.mean() > before.best_iou.mean() + 0.2
    # the coverage reported is the one those anchors give, and the same call suggests the same again
    applied = anchor_coverage(config.replace(anchor_sizes=suggestion.sizes, aspect_ratios=suggestion.ratios), items)
    np.testing.assert_allclose(applied.best_iou, after.best_iou)
    again = suggest_anchors(config, items)
    assert again.sizes == suggestion.sizes and again.ratios == suggestion.ratios


def test_suggestion_finds_the_shapes_the_boxes_were_made_from():
    """Boxes of exactly two sizes and two ratios, centred on anchor positions: k-means gets them back."""
    config = ModelConfig(classes=CLASSES, backbone="resnet18", fpn=False, min_size=256, max_size=256,
                         returned_layers=[2], anchor_sizes=[[32, 64]], aspect_ratios=[[1.0, 2.0]])
    items = []
    for size, ratio in [(20, 0.5), (20, 3.0), (70, 0.5), (70, 3.0)] * 3:
        width, height = size / np.sqrt(ratio), size * np.sqrt(ratio)
        box = [128 - width / 2, 128 - height / 2, 128 + width / 2, 128 + height / 2]  # on an anchor centre
        items.append(((256, 256), Annotation([box], ["object"])))
    suggestion = suggest_anchors(config, items, n_sizes=2, n_ratios=2)
    assert suggestion.sizes == ((20, 70),) and suggestion.ratios == ((0.5, 3.0),)
    assert suggestion.coverage.share(0.9) == 1.0  # not 1: torchvision rounds anchors to whole pixels


def test_suggestion_gives_a_value_once():
    """Square boxes only: one ratio, not three equal ones."""
    items = [((200, 200), Annotation([[10, 10, 10 + side, 10 + side]], ["object"])) for side in (12, 20, 35, 60)]
    suggestion = suggest_anchors(preset("cpu", CLASSES, min_size=200, max_size=200), items, n_ratios=3)
    assert suggestion.ratios == ((1.0,),) and len(suggestion.sizes[0]) == 4


def test_suggestion_errors():
    with pytest.raises(ValueError, match="no boxes"):
        suggest_anchors(SMALL_FPN, [((40, 50), Annotation())])
    with pytest.raises(ValueError, match="multiple of 5"):
        suggest_anchors(SMALL_FPN, tall_thin_items(), n_sizes=7)
    with pytest.raises(ValueError, match="at least one size"):
        suggest_anchors(preset("cpu", CLASSES), tall_thin_items(), n_ratios=0)
    two_per_level = suggest_anchors(SMALL_FPN, tall_thin_items(), n_sizes=10, n_ratios=2)
    assert [len(sizes) for sizes in two_per_level.sizes] == [2] * 5
