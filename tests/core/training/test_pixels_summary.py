"""The line a training run starts with about its pixels: types and channels read from the files' headers,
the channels the detector sees, and how values are scaled."""

import numpy as np
import tifffile
from PIL import Image

from napari_faster_rcnn.core.training.pixels_summary import pixels_line


def test_mixed_8_and_16_bit_images_say_each_is_scaled_its_own_way(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(tmp_path / "b.png")
    line = pixels_line([tmp_path / "a.png", tmp_path / "b.png"], [np.uint8, np.uint16], "auto", None)
    assert line == ("pixels: uint16, uint8; the detector sees gray and RGB images as stored; 8-bit values divided "
                    "by 255, others scaled per image from its 1st to its 99.8th percentile (normalization auto)")


def test_four_channels_without_a_choice_and_a_fixed_range(tmp_path):
    tifffile.imwrite(tmp_path / "cells.ome.tif", np.zeros((4, 8, 8), np.uint16), metadata={"axes": "CYX"})
    files = [tmp_path / "cells.ome.tif"]
    assert pixels_line(files, [np.uint16], "range:100,4000", None) == (
        "pixels: uint16, 4 channels (C); the detector sees no channels yet: more than 3 need a choice (the "
        "model's channels); values from 100 to 4000 scaled to 0 to 1, clipped (normalization range:100,4000)")
    assert pixels_line(files, [np.uint16], "percentiles:2,98", [3, 0]) == (
        "pixels: uint16, 4 channels (C); the detector sees channels 3 and 0 (a third of zeros); values scaled "
        "per image from its 2nd to its 98th percentile (normalization percentiles:2,98)")
