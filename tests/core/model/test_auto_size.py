"""Auto sizing against a brute force of torchvision's resize, done by hand: the median resized box
lands in the chosen anchors' range and nearest the target of every size it could have chosen; the
anchors are the Anchor boxes widget's suggestion; and the warning for boxes too small for the model."""

import math
import statistics

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.synthetic import SHAPE_CLASSES, make_synthetic_sample
from napari_faster_rcnn.core.model.anchor_suggestion import suggest_anchors
from napari_faster_rcnn.core.model.auto_size import MAX_SIDE, auto_size, small_box_warning, target_size
from napari_faster_rcnn.core.model.config import preset
from napari_faster_rcnn.core.model.config_rules import ConfigError


def photo_items(count=6, seed=3):
    """Images of a few hundred pixels, of several shapes, with objects of 40-110 px (like the
    tutorial's heads): the ``cpu`` preset's 128 px shrinks them far below its feature map's reach."""
    shapes = [(300, 400), (480, 360), (420, 420), (250, 500)]
    items = []
    for index in range(count):
        height, width = shapes[index % len(shapes)]
        image, annotation = make_synthetic_sample(seed, index, height=height, width=width, objects=(2, 5),
                                                  sizes=(40, 110))
        items.append((image.shape[:2], annotation))
    return items


def resized_box_sizes(items, min_size, max_size):
    """sqrt(width * height) of every box after torchvision's resize, by hand, one box at a time."""
    sizes = []
    for (height, width), annotation in items:
        scale = min(min_size / min(height, width), max_size / max(height, width))
        new_height, new_width = math.floor(height * scale), math.floor(width * scale)
        for x1, y1, x2, y2 in annotation.boxes.tolist():
            box_width = (min(x2, width) - max(x1, 0)) * new_width / width
            box_height = (min(y2, height) - max(y1, 0)) * new_height / height
            if box_width > 0 and box_height > 0:
                sizes.append(math.sqrt(box_width * box_height))
    return sizes


@pytest.mark.parametrize("preset_name", ["cpu", "default"])
def test_the_median_resized_box_lands_in_the_anchors_range_nearest_the_target(preset_name):
    items = photo_items()
    base = preset(preset_name, SHAPE_CLASSES, weights="none")
    result = auto_size(base, items)
    config = result.config
    assert config.min_size % 32 == 0 and config.max_size % 32 == 0 and config.max_size <= MAX_SIDE

    median = statistics.median(resized_box_sizes(items, config.min_size, config.max_size))
    anchors = [size for level in config.anchors()[0] for size in level]
    assert min(anchors) <= median <= max(anchors)
    assert result.median_resized == pytest.approx(
        (statistics.median(w for w in _resized_widths(items, config)), result.median_resized[1]))

    # no other min_size (multiples of 32, max_size following the images' shape) gets nearer the target
    target = target_size(base)
    chosen = abs(math.log(median / target))
    elongation = float(np.quantile([max(size) / min(size) for size, _ in items], 0.9))
    for min_size in range(64, MAX_SIDE + 1, 32):
        max_size = min(MAX_SIDE, math.ceil(min_size * elongation / 32) * 32)
        other = statistics.median(resized_box_sizes(items, min_size, max(min_size, max_size)))
        assert chosen <= abs(math.log(other / target)) + 1e-9, min_size
    assert chosen < math.log(1.25)  # within a 32 px step of it


def _resized_widths(items, config):
    widths = []
    for (height, width), annotation in items:
        scale = min(config.min_size / min(height, width), config.max_size / max(height, width))
        widths += [(x2 - x1) * math.floor(width * scale) / width for x1, _, x2, _ in annotation.boxes.tolist()]
    return widths


def test_the_cpu_preset_grows_its_images_for_large_objects_and_takes_the_anchor_suggestion():
    items = photo_items()
    base = preset("cpu", SHAPE_CLASSES)
    result = auto_size(base, items)
    assert result.config.min_size > base.min_size  # 40-110 px objects in 250-480 px images
    sized = base.replace(min_size=result.config.min_size, max_size=result.config.max_size)
    suggestion = suggest_anchors(sized, items, n_ratios=3)
    assert result.config.anchors() == (suggestion.sizes, suggestion.ratios)
    assert result.after >= result.before
    # everything else is the preset's
    assert result.config.replace(min_size=base.min_size, max_size=base.max_size,
                                 anchor_sizes=base.anchor_sizes, aspect_ratios=base.aspect_ratios) == base
    text = result.describe()
    assert f"min_size {result.config.min_size}, max_size {result.config.max_size}" in text
    assert result.to_dict()["anchor_sizes"] == [list(level) for level in result.config.anchors()[0]]


def test_auto_sizing_needs_boxes():
    items = [((100, 100), Annotation())]
    with pytest.raises(ValueError, match="needs boxes"):
        auto_size(preset("cpu", SHAPE_CLASSES), items)


def test_the_warning_when_most_resized_boxes_fall_below_the_smallest_anchor():
    config = preset("cpu", ["object"])  # 128 px, smallest anchor 16 px
    # 400 x 400 images resized to 128: a box of 40 px becomes 12.8 px, one of 60 px 19.2 px
    small = Annotation(np.array([[0, 0, 40, 40], [100, 100, 140, 140], [200, 200, 260, 260]]), ["object"] * 3)
    message = small_box_warning(config, [((400, 400), small)])
    assert message is not None and "67% of the 3 training boxes are smaller than the smallest anchor (16 px)" in message
    assert "--model.auto true" in message
    fitted = small_box_warning(config, [((400, 400), small)], fitted=True)  # auto sizing chose these already
    assert fitted.startswith(message.split(";")[0]) and "--model.auto" not in fitted and "--data.tile_size" in fitted
    # a third below is not most of them; 3.6 cells of stride 8 is not coarse either
    large = Annotation(np.array([[0, 0, 40, 40], [100, 100, 190, 190], [200, 200, 290, 290]]), ["object"] * 3)
    assert small_box_warning(config, [((400, 400), large)]) is None


def test_the_warning_for_boxes_too_coarse_for_the_feature_map_and_not_after_auto_sizing():
    items = photo_items()
    config = preset("cpu", SHAPE_CLASSES)
    message = small_box_warning(config, items)
    assert message is not None and "cells of its stride-8 feature map" in message
    assert small_box_warning(auto_size(config, items).config, items) is None


def test_the_module_fits_its_config_to_the_training_items():
    from napari_faster_rcnn.core.training.module import DetectorModule

    items = photo_items(4)
    module = DetectorModule(preset="cpu", classes=list(SHAPE_CLASSES), auto=True, training_items=items)
    assert module.config == auto_size(preset("cpu", SHAPE_CLASSES), items).config
    assert module.hparams["config"]["min_size"] == module.config.min_size and module.hparams["auto"] is False
    with pytest.raises(ConfigError, match="auto: .*training images"):
        DetectorModule(preset="cpu", classes=list(SHAPE_CLASSES), auto=True)
