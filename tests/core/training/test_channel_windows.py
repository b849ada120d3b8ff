"""A large image of a microscope's channels (axes CYX) with chosen channels is read window by window, in
training and in tiled prediction, with the pixels and the percentiles of the image read whole."""

import numpy as np
import pytest
import tifffile

from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.intensity import channel_percentiles
from napari_faster_rcnn.core.data.regions import open_regions
from napari_faster_rcnn.core.prediction.reading import TileSource
from napari_faster_rcnn.core.training.sample_images import read_sample_window, region_levels
from napari_faster_rcnn.core.training.samples import TrainingSample


@pytest.fixture
def stains(tmp_path):
    rng = np.random.default_rng(21)
    pixels = np.stack([rng.integers(0, 1000 * (c + 1), (600, 700), dtype=np.uint16) for c in range(4)])
    path = tmp_path / "slide.ome.tif"
    tifffile.imwrite(path, pixels, metadata={"axes": "CYX"}, tile=(128, 128), compression="zlib")
    return path, pixels


def detector_view(pixels, channels):
    """The documented rule from the written channels: one repeated, two and zeros, three in order."""
    chosen = [pixels[channel] for channel in channels]
    if len(chosen) == 1:
        chosen *= 3
    if len(chosen) == 2:
        chosen.append(np.zeros_like(pixels[0]))
    return np.dstack(chosen)


@pytest.mark.parametrize("channels", [(2, 0), (3,), (1, 3, 0)])
def test_training_windows_and_percentiles_take_the_chosen_channels(stains, channels):
    path, pixels = stains
    whole = read_image(path, channels)  # the image read whole, the detector's channels chosen
    np.testing.assert_array_equal(whole, detector_view(pixels, channels))
    sample = TrainingSample(path, None)
    window = read_sample_window(sample, (130, 40, 390, 300), (600, 700), channels)
    assert window is not None  # read by region, not whole
    np.testing.assert_array_equal(window, whole[40:300, 130:390])
    low, high = region_levels(sample, (600, 700), channels, (1, 99.8))
    expected_low, expected_high = channel_percentiles(whole, (1, 99.8))
    np.testing.assert_allclose(low, expected_low)
    np.testing.assert_allclose(high, expected_high)


def test_prediction_tiles_read_by_region_are_those_of_the_image_read_whole(stains):
    path, _ = stains
    channels = (3, 1)
    by_region = TileSource(open_regions(path), "auto", channels)
    held = TileSource(read_image(path, channels), "auto")
    try:
        np.testing.assert_allclose(by_region.levels, held.levels)
        for box in ((0, 256, 0, 256), (300, 600, 444, 700)):
            np.testing.assert_array_equal(by_region.tile(*box), held.tile(*box))
    finally:
        by_region.close()
