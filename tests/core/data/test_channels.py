"""Channel selection (issue 13): which channels the detector sees, in which order, values untouched."""

import numpy as np
import pytest
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.channels import channels_text, check_channels, select_channels
from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.stack_files import read_plane, stack_shape
from napari_faster_rcnn.core.model.config import ConfigError, ModelConfig
from napari_faster_rcnn.core.training.dataset import DetectionDataset
from napari_faster_rcnn.core.training.samples import TrainingSample
from tests.conftest import write_image


def channel_image(channels=4, height=20, width=30, dtype=np.uint16, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(100.0, 30.0, (channels, height, width)).astype(dtype)
    return rng.integers(0, 4096, (channels, height, width), dtype=dtype)


@pytest.mark.parametrize(("text", "expected"), [
    (None, None), ("", None), ("none", None), ("0", (0,)), ("0,2", (0, 2)), ("[2, 1, 0]", (2, 1, 0)),
    ([3, 1], (3, 1)), (1, (1,)), ("2 0", (2, 0)),
])
def test_channels_are_read_from_text_and_lists(text, expected):
    assert check_channels(text) == expected
    assert check_channels(channels_text(expected)) == expected


@pytest.mark.parametrize(("text", "reason"), [
    ("0,1,2,3", "one to three"), ("-1", "count from 0"), ("1,1", "differ"), ("a,b", "channel numbers"),
    ([0.5], "whole numbers"),
])
def test_bad_channels_say_why(text, reason):
    with pytest.raises(ValueError, match=reason):
        check_channels(text)
    with pytest.raises(ConfigError, match=reason):
        ModelConfig(classes=("cell",), channels=text)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_selection_keeps_values_and_orders_channels(dtype):
    pixels = np.moveaxis(channel_image(4, dtype=dtype), 0, -1)  # (H, W, 4)
    one = select_channels(pixels, (2,), axis="C")
    assert one.dtype == pixels.dtype
    for index in range(3):
        np.testing.assert_array_equal(one[:, :, index], pixels[:, :, 2])
    two = select_channels(pixels, (3, 0), axis="C")
    np.testing.assert_array_equal(two[:, :, 0], pixels[:, :, 3])
    np.testing.assert_array_equal(two[:, :, 1], pixels[:, :, 0])
    assert not two[:, :, 2].any()  # the rule for two: zeros as the third
    three = select_channels(pixels, (1, 3, 0), axis="C")
    np.testing.assert_array_equal(three, pixels[:, :, [1, 3, 0]])


def test_a_multichannel_tiff_needs_channels_above_three_and_names_the_file(tmp_path):
    data = channel_image(4)
    path = tmp_path / "stains.ome.tif"
    tifffile.imwrite(path, data, metadata={"axes": "CYX"})
    assert stack_shape(path) is None  # channels are not planes
    with pytest.raises(ImageReadError, match=r"stains\.ome\.tif.*4 channels.*channels"):
        read_image(path)
    chosen = read_image(path, (3, 1))
    np.testing.assert_array_equal(chosen[:, :, 0], data[3])
    np.testing.assert_array_equal(chosen[:, :, 1], data[1])
    assert chosen.dtype == np.uint16 and not chosen[:, :, 2].any()
    with pytest.raises(ImageReadError, match=r"stains\.ome\.tif: has 4 channels .* ask for 5"):
        read_image(path, (5,))


def test_two_or_three_channels_without_a_choice_are_used_in_order(tmp_path):
    data = channel_image(3)
    tifffile.imwrite(tmp_path / "three.tif", data, imagej=True, metadata={"axes": "CYX"})
    np.testing.assert_array_equal(read_image(tmp_path / "three.tif"), np.moveaxis(data, 0, -1))


def test_rgb_and_gray_files_keep_todays_rule_and_take_channels_too(tmp_path):
    rgb = write_image(tmp_path / "colour.png", mode="RGB")
    np.testing.assert_array_equal(read_image(tmp_path / "colour.png"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "colour.png", (2, 0, 1)), rgb[:, :, [2, 0, 1]])
    rgba = write_image(tmp_path / "alpha.png", mode="RGBA")
    np.testing.assert_array_equal(read_image(tmp_path / "alpha.png"), rgba[:, :, :3])
    np.testing.assert_array_equal(read_image(tmp_path / "alpha.png", (3,))[:, :, 1], rgba[:, :, 3])
    gray = write_image(tmp_path / "gray.png", mode="I;16")
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png", (0,))[:, :, 2], gray)
    with pytest.raises(ImageReadError, match=r"gray\.png: has 1 channel"):
        read_image(tmp_path / "gray.png", (1,))


def test_a_multichannel_time_lapse_has_time_planes_and_chosen_channels(tmp_path):
    movie = np.random.default_rng(1).integers(0, 60000, (5, 2, 20, 30), dtype=np.uint16)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TCYX"})
    assert stack_shape(path) == (5,)
    plane = read_plane(path, (3,), (1,))
    np.testing.assert_array_equal(plane[:, :, 0], movie[3, 1])
    both = read_plane(path, (3,))  # two channels, no choice: in order, zeros third
    np.testing.assert_array_equal(both[:, :, :2], np.moveaxis(movie[3], 0, -1))


def test_the_dataset_trains_on_the_chosen_channel_with_its_16_bit_values(tmp_path):
    data = channel_image(4, height=32, width=32)
    path = tmp_path / "stains.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "CYX"})
    sample = TrainingSample(path, Annotation(boxes=[[2, 2, 10, 10]], labels=["cell"]))
    with pytest.raises(ImageReadError, match="stains.tif: 4 channels"):
        DetectionDataset([sample], normalization="none")[0]
    dataset = DetectionDataset([sample], normalization="range:0,4096", channels=(2,))
    tensor, _ = dataset[0]
    expected = np.clip(data[2].astype(np.float64) / 4096, 0, 1)  # 16-bit values until normalization
    for index in range(3):
        np.testing.assert_allclose(tensor[index].numpy(), expected, atol=1e-6)
    dataset.channels = (0, 3)  # a new choice: no stale cache
    tensor, _ = dataset[0]
    np.testing.assert_allclose(tensor[0].numpy(), np.clip(data[0] / 4096, 0, 1), atol=1e-6)
    np.testing.assert_allclose(tensor[1].numpy(), np.clip(data[3] / 4096, 0, 1), atol=1e-6)
    assert not tensor[2].any()
