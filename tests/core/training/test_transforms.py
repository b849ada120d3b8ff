import dataclasses

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_faster_rcnn.core.training.transforms import AugmentationConfig, build_transform

NONE = AugmentationConfig.none()


def only(**settings_) -> AugmentationConfig:
    return dataclasses.replace(NONE, **settings_)


def run(transform, image, boxes, labels=None):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.arange(1, len(boxes) + 1, dtype=np.int64) if labels is None else np.asarray(labels, np.int64)
    result = transform(image=image, bboxes=boxes, labels=labels)
    return result["image"], np.asarray(result["bboxes"]).reshape(-1, 4), np.asarray(result["labels"])


def drawn_box(image, threshold=127):
    """The xyxy box around the pixels brighter than ``threshold`` in channel 0, or None."""
    rows, cols = np.nonzero(image[:, :, 0] > threshold)
    if len(rows) == 0:
        return None
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)


def image_with_rectangle(height, width, box):
    image = np.zeros((height, width, 3), dtype=np.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    image[y1:y2, x1:x2] = 255
    return image


# --- the config ------------------------------------------------------------


def test_config_round_trips_through_yaml():
    config = AugmentationConfig(vertical_flip_probability=0.25, scale_range=(0.5, 1.5), min_visibility=0.3)
    text = yaml.safe_dump(config.to_dict())
    assert AugmentationConfig.from_dict(yaml.safe_load(text)) == config
    assert AugmentationConfig.from_dict({}) == AugmentationConfig()
    assert AugmentationConfig.from_dict(NONE.to_dict()) == NONE


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"horizontal_flip_probability": 1.5}, "horizontal_flip_probability"),
        ({"vertical_flip_probability": "often"}, "vertical_flip_probability"),
        ({"brightness_limit": -0.1}, "brightness_limit"),
        ({"contrast_limit": float("nan")}, "contrast_limit"),
        ({"scale_range": [1.2, 0.8]}, "scale_range"),
        ({"scale_range": 1.2}, "scale_range"),
        ({"scale_range": [0, 1]}, "scale_range"),
        ({"scale_probability": True}, "scale_probability"),
        ({"flip": 0.5}, "flip"),
    ],
)
def test_bad_settings_name_the_field(data, field):
    with pytest.raises(ValueError, match=field):
        AugmentationConfig.from_dict(data)


def test_none_is_the_identity_and_the_defaults_are_not():
    assert NONE.is_identity
    assert not AugmentationConfig().is_identity
    assert AugmentationConfig().vertical_flip_probability == 0.0  # photos have an up
    with pytest.raises(ValueError, match="mapping"):
        AugmentationConfig.from_dict([0.5])


def test_validation_transform_changes_nothing():
    everything = AugmentationConfig(
        horizontal_flip_probability=1.0, vertical_flip_probability=1.0, scale_probability=1.0,
        brightness_contrast_probability=1.0,
    )
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    boxes = [[1.5, 2.25, 20, 29.75], [0, 0, 40, 30]]
    for transform in (build_transform(everything, train=False), build_transform(None, train=True),
                      build_transform(NONE, train=True)):
        out, out_boxes, labels = run(transform, image, boxes)
        assert np.array_equal(out, image)
        np.testing.assert_allclose(out_boxes, boxes, atol=1e-4)
        assert labels.tolist() == [1, 2]


# --- flips -----------------------------------------------------------------

sizes = st.tuples(st.integers(8, 300), st.integers(8, 300))


@st.composite
def image_and_boxes(draw):
    height, width = draw(sizes)
    count = draw(st.integers(0, 6))
    boxes = []
    for _ in range(count):
        x1 = draw(st.floats(0, width - 1, allow_nan=False))
        y1 = draw(st.floats(0, height - 1, allow_nan=False))
        x2 = draw(st.floats(x1 + 0.5, width, allow_nan=False))
        y2 = draw(st.floats(y1 + 0.5, height, allow_nan=False))
        boxes.append([x1, y1, x2, y2])
    return height, width, np.array(boxes, dtype=np.float64).reshape(-1, 4)


@settings(max_examples=60, deadline=None)
@given(image_and_boxes())
def test_flips_follow_the_formula_and_twice_is_the_identity(case):
    height, width, boxes = case
    image = np.zeros((height, width, 3), dtype=np.uint8)
    horizontal = build_transform(only(horizontal_flip_probability=1.0), train=True)
    vertical = build_transform(only(vertical_flip_probability=1.0), train=True)

    _, flipped, labels = run(horizontal, image, boxes)
    expected = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)
    np.testing.assert_allclose(flipped, expected, atol=1e-3)  # albumentations' float32 normalization
    assert labels.tolist() == list(range(1, len(boxes) + 1))
    np.testing.assert_allclose(run(horizontal, image, flipped)[1], boxes, atol=2e-3)

    _, flipped, _ = run(vertical, image, boxes)
    expected = np.stack([boxes[:, 0], height - boxes[:, 3], boxes[:, 2], height - boxes[:, 1]], axis=1)
    np.testing.assert_allclose(flipped, expected, atol=1e-3)
    np.testing.assert_allclose(run(vertical, image, flipped)[1], boxes, atol=2e-3)


def test_flipped_pixels_and_boxes_stay_together():
    box = [5, 3, 17, 11]
    image = image_with_rectangle(20, 30, box)
    for config in (only(horizontal_flip_probability=1.0), only(vertical_flip_probability=1.0)):
        out, boxes, _ = run(build_transform(config, train=True), image, [box])
        np.testing.assert_allclose(boxes[0], drawn_box(out), atol=1e-3)
    out, boxes, _ = run(build_transform(only(horizontal_flip_probability=1.0), train=True), image, [box])
    assert boxes[0] == pytest.approx([13, 3, 25, 11], abs=1e-3)


# --- scale -----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.integers(40, 120), st.integers(40, 120), st.floats(0, 0.8), st.floats(0, 0.8), st.floats(0.1, 0.5),
    st.floats(0.1, 0.5), st.integers(0, 2**16),
)
def test_scale_keeps_boxes_on_their_objects(height, width, left, top, box_width, box_height, seed):
    box = np.array([left * width, top * height, (left + box_width) * width, (top + box_height) * height])
    box = np.floor(box)
    box[2:] = np.maximum(box[2:], box[:2] + 2)
    image = image_with_rectangle(height, width, box)
    transform = build_transform(only(scale_range=(0.6, 1.6), scale_probability=1.0), train=True, seed=seed)
    out, boxes, labels = run(transform, image, [box])
    assert out.shape == image.shape  # a zoom inside the same canvas
    pixels = drawn_box(out)
    if len(boxes) == 0:  # pushed out of the image entirely
        assert pixels is None
        return
    assert boxes.min() >= 0 and boxes[0, 2] <= width and boxes[0, 3] <= height  # cut at the border
    if pixels is not None:
        np.testing.assert_allclose(boxes[0], pixels, atol=1.5)


def test_zoom_scales_about_the_centre():
    image = image_with_rectangle(60, 80, [20, 10, 50, 30])
    for factor, expected in [(0.5, [30, 20, 45, 30]), (2.0, [0, 0, 60, 30])]:
        transform = build_transform(only(scale_range=(factor, factor), scale_probability=1.0), train=True)
        _, boxes, _ = run(transform, image, [[20, 10, 50, 30]])
        np.testing.assert_allclose(boxes[0], expected, atol=1e-3)


def test_min_visibility_drops_boxes_mostly_pushed_out():
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    boxes = [[10, 40, 30, 60], [40, 40, 60, 60]]  # zoomed 2x, the first keeps a quarter of its area inside
    for min_visibility, kept in [(0.0, [1, 2]), (0.6, [2])]:
        config = only(scale_range=(2.0, 2.0), scale_probability=1.0, min_visibility=min_visibility)
        _, out_boxes, labels = run(build_transform(config, train=True), image, boxes)
        assert labels.tolist() == kept
    np.testing.assert_allclose(out_boxes, [[30, 30, 70, 70]], atol=1e-3)


# --- brightness and contrast, seeds ----------------------------------------


def test_brightness_and_contrast_change_pixels_not_boxes():
    image = np.random.default_rng(1).integers(60, 200, (40, 50, 3), dtype=np.uint8)
    boxes = [[3, 4, 20, 30.5]]
    config = only(brightness_limit=0.4, contrast_limit=0.4, brightness_contrast_probability=1.0)
    transform = build_transform(config, train=True, seed=5)
    changed = 0
    for _ in range(5):
        out, out_boxes, _ = run(transform, image, boxes)
        np.testing.assert_allclose(out_boxes, boxes, atol=1e-4)
        assert out.dtype == np.uint8 and out.shape == image.shape
        changed += not np.array_equal(out, image)
    assert changed >= 4


def test_the_same_seed_gives_the_same_augmentations():
    image = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    boxes = [[5, 5, 30, 20], [30, 25, 60, 45]]

    def sequence(seed):
        transform = build_transform(AugmentationConfig(vertical_flip_probability=0.5), train=True, seed=seed)
        return [run(transform, image, boxes) for _ in range(6)]

    first, again, other = sequence(11), sequence(11), sequence(12)
    for (a_image, a_boxes, _), (b_image, b_boxes, _) in zip(first, again):
        assert np.array_equal(a_image, b_image) and np.array_equal(a_boxes, b_boxes)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))


@pytest.mark.parametrize("normalization", ["auto", "none"])
def test_brightness_and_contrast_never_black_out_a_16_bit_sample(tmp_path, normalization):
    """Issue 13: a 12-bit signal in a 16-bit file under the default augmentation, 200 draws: every
    sample keeps its object visibly brighter than its background and at least half its peak, under
    percentiles (the default) and under the type's own scale (where the signal ends at 0.03)."""
    from PIL import Image

    from napari_faster_rcnn.core.data.annotations import Annotation
    from napari_faster_rcnn.core.training.dataset import DetectionDataset

    rng = np.random.default_rng(0)
    pixels = rng.normal(100, 10, (48, 48))
    pixels[16:32, 16:32] += 2000
    Image.fromarray(np.clip(pixels, 0, 65535).astype(np.uint16)).save(tmp_path / "nuclei.png")
    config = AugmentationConfig(horizontal_flip_probability=0.0, vertical_flip_probability=0.0,
                                scale_probability=0.0, brightness_contrast_probability=1.0)
    samples = [(tmp_path / "nuclei.png", Annotation([[16, 16, 32, 32]], ["nucleus"]))]
    plain = DetectionDataset(samples, normalization=normalization)[0][0]
    dataset = DetectionDataset(samples, transform=build_transform(config, train=True, seed=1),
                               normalization=normalization)
    blacked = 0
    for _ in range(200):
        image, target = dataset[0]
        assert len(target["boxes"]) == 1
        inside, outside = image[:, 18:30, 18:30].mean(), image[:, :10, :10].mean()
        blacked += not (float(image.max()) >= 0.5 * float(plain.max()) and inside > outside + 0.25 * plain.max())
    assert blacked == 0
