"""The image and boxes as the model sees them (against torchvision's own transform), a folder read
for the anchor tools, and anchor settings typed as text."""

import numpy as np
import pytest
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.folders import DatasetError
from napari_faster_rcnn.core.model.anchor_inputs import (
    anchor_settings,
    format_anchor_text,
    iter_folder_items,
    parse_anchor_text,
    transform_boxes,
    transform_image,
)
from napari_faster_rcnn.core.model.config import ModelConfig, preset
from napari_faster_rcnn.core.model.config_rules import ConfigError
from napari_faster_rcnn.core.model.detector import padded_image_size
from napari_faster_rcnn.core.progress import collect

BASE = ModelConfig(classes=("object",))


@pytest.mark.parametrize("image_size, min_size, max_size", [((97, 150), 200, 333), ((300, 120), 96, 160),
                                                             ((64, 64), 100, 100)])
def test_image_and_boxes_are_what_torchvision_s_transform_makes(image_size, min_size, max_size):
    config = BASE.replace(min_size=min_size, max_size=max_size)
    rng = np.random.default_rng(0)
    image = rng.random((*image_size, 3), dtype=np.float32)
    boxes = np.array([[3.0, 5.0, 40.5, 60.25], [10, 0, image_size[1], image_size[0]]])
    transform = GeneralizedRCNNTransform(min_size, max_size, list(config.image_mean), list(config.image_std)).eval()
    target = {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.ones(2, dtype=torch.int64)}
    batch, targets = transform([torch.from_numpy(image).permute(2, 0, 1)], [target])

    shown = transform_image(config, image)
    assert shown.shape == (*padded_image_size(config, image_size), 3) and shown.dtype == np.float32
    height, width = batch.image_sizes[0]
    normalized = (shown - np.array(config.image_mean, np.float32)) / np.array(config.image_std, np.float32)
    np.testing.assert_allclose(normalized, batch.tensors[0].permute(1, 2, 0).numpy(), atol=1e-5)
    np.testing.assert_allclose(shown[height:, :], np.broadcast_to(config.image_mean, shown[height:].shape), atol=1e-6)
    np.testing.assert_allclose(transform_boxes(config, image_size, boxes), targets[0]["boxes"].numpy(), rtol=1e-6)


def test_eight_bit_and_gray_images():
    config = BASE.replace(min_size=50, max_size=80)
    gray = np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))
    shown = transform_image(config, gray)
    assert shown.dtype == np.uint8 and shown.shape == (64, 96, 3)
    assert np.array_equal(shown[:50, :66, 0], shown[:50, :66, 2])  # gray stays gray
    assert tuple(shown[-1, -1]) == tuple(int(round(v * 255)) for v in config.image_mean)  # the padding: the mean
    assert shown[:50, :66, 0].max() <= 234 and np.all(np.diff(shown[10, :66, 0].astype(int)) >= 0)
    # boxes are cut at the image border first, as training cuts them
    np.testing.assert_allclose(transform_boxes(config, (30, 40), [[-5, -5, 50, 20]]), [[0, 0, 66, 33.333333]],
                               atol=1e-4)


def test_folder_items_yield_progress_and_list_what_they_skip(tutorial_dataset):
    (tutorial_dataset / "target" / "002.pt").write_bytes(b"not a pickle")
    (tutorial_dataset / "input" / "005.png").unlink()
    steps, result = collect(iter_folder_items(tutorial_dataset, report_every=2))
    assert steps[0] == (0, 5) and steps[-1] == (5, 5)  # 005.pt has no image: not a sample
    assert result.names == ["000", "001", "003", "004"] and len(result.items) == 4
    assert [path.name for path in result.images] == ["000.png", "001.png", "003.png", "004.png"]
    for (size, annotation), name in zip(result.items, result.names):
        assert size == (64, 80)
        assert annotation == load_annotation(tutorial_dataset / "target" / f"{name}.pt")
    reasons = {path.split("/")[-1]: reason for path, reason in result.skipped}
    assert set(reasons) >= {"002.pt", "002.png", "005.pt"}
    assert set(result.classes) <= {"circle", "square", "triangle"} and result.classes
    with pytest.raises(DatasetError):
        next(iter_folder_items(tutorial_dataset / "input" / "000.png"))


@pytest.mark.parametrize("text, expected", [
    ("", None),
    ("  ", None),
    ("(16, 32), (64,)", ((16, 32), (64,))),
    ("((16, 32), (64,))", ((16, 32), (64,))),
    ("[[16, 32], [64]]", ((16, 32), (64,))),
    ("(0.5, 1, 2)", ((0.5, 1, 2),)),
    ("(32,), (64,), (128,)", ((32,), (64,), (128,))),
    ("16, 32\n64\n", ((16, 32), (64,))),
    ("16 32; 64", ((16, 32), (64,))),
    ("(8, (16, 24))", ((8,), (16, 24))),
])
def test_anchor_text_is_read(text, expected):
    assert parse_anchor_text(text) == expected
    if expected is not None:
        assert parse_anchor_text(format_anchor_text(expected)) == expected


@pytest.mark.parametrize("text", ["(16, 32", "(16, 'a')", "16, x", "__import__('os')", "((),)", "(True,)"])
def test_unreadable_anchor_text_names_the_field(text):
    with pytest.raises(ConfigError, match="^aspect_ratios: cannot read"):
        parse_anchor_text(text, "aspect_ratios")


def test_format_anchor_text():
    assert format_anchor_text(((16, 24.0, 32.5), (64,))) == "(16, 24, 32.5), (64,)"


def test_settings_from_text():
    config = anchor_settings(BASE, "(16,), (32,), (64,), (128,), (256,)", "(0.5, 1)", min_size=600)
    assert config.anchors() == (((16,), (32,), (64,), (128,), (256,)), ((0.5, 1),) * 5) and config.min_size == 600
    assert anchor_settings(BASE, "", "").anchors() == BASE.anchors()  # empty: the backbone's defaults
    # a new backbone starts from its default stages; a kept one keeps the preset's
    cpu = preset("cpu", ["object"])
    assert anchor_settings(cpu, "(16, 32)", "", max_size=200).layers == (2,)
    assert anchor_settings(cpu, "", "", fpn=True).layers == (1, 2, 3, 4)
    assert anchor_settings(cpu, "", "", backbone="resnet18").layers == (4,)


def test_a_count_that_does_not_match_the_maps_is_a_clear_error():
    with pytest.raises(ConfigError, match="^anchor_sizes: resnet50 with FPN gives 5 feature maps .* got 2"):
        anchor_settings(BASE, "(16, 32), (64,)", "")
    with pytest.raises(ConfigError, match="^aspect_ratios: .* needs 5 tuples"):
        anchor_settings(BASE, "", "(0.5,), (1,)")
    with pytest.raises(ConfigError, match="same number of anchors per position"):
        anchor_settings(BASE, "(16, 32), (64,), (128,), (256,), (512,)", "")
    with pytest.raises(ConfigError, match="^anchor_sizes: anchor sizes must be positive"):
        anchor_settings(BASE.replace(fpn=False), "(-16, 32)", "")
