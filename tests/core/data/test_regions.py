"""Reading images by region: every region equals the same slice of the image decoded whole by
tifffile, zarr or Pillow (the independent references), and a region of a tiled TIFF costs the
memory of the region, not of the image."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from napari_faster_rcnn.core.data.display_levels import level_steps, region_levels, region_stack_levels
from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.regions import open_regions

REGIONS = [(0, 1, 0, 1), (0, 300, 0, 333), (100, 357, 250, 600), (511, 513, 255, 257), (600, 700, 0, 700),
           (250, 251, 3, 640)]


def rgb(array):
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    return array[:, :, :3]


def random_pixels(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


TIFF_LAYOUTS = {
    "tiled": ((700, 650, 3), np.uint8, dict(tile=(256, 256), photometric="rgb")),
    "tiled deflate": ((700, 650, 3), np.uint8, dict(tile=(128, 256), photometric="rgb", compression="zlib")),
    "striped": ((700, 650, 3), np.uint8, dict(rowsperstrip=64, photometric="rgb", compression="zlib")),
    "uncompressed one strip": ((700, 650, 3), np.uint8, dict(photometric="rgb")),
    "gray 16-bit tiled": ((700, 650), np.uint16, dict(tile=(256, 256), photometric="minisblack")),
    "rgba tiled": ((700, 650, 4), np.uint8, dict(tile=(256, 256), photometric="rgb")),
    "float tiled": ((700, 650), np.float32, dict(tile=(256, 256), photometric="minisblack")),
    "planar separate": ((3, 700, 650), np.uint8, dict(tile=(256, 256), photometric="rgb", planarconfig="separate")),
    "one compressed strip": ((700, 650, 3), np.uint8, dict(photometric="rgb", compression="zlib",
                                                           rowsperstrip=700)),
}


@pytest.mark.parametrize("layout", list(TIFF_LAYOUTS))
def test_tiff_regions_equal_slices_of_the_decoded_image(tmp_path, layout):
    shape, dtype, options = TIFF_LAYOUTS[layout]
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, random_pixels(shape, dtype), **options)
    reference = tifffile.imread(path)
    if options.get("planarconfig") == "separate":
        reference = np.moveaxis(reference, 0, -1)
    reference = rgb(reference)
    with open_regions(path) as regions:
        assert (regions.height, regions.width, regions.dtype) == (700, 650, np.dtype(dtype))
        for y0, y1, x0, x1 in REGIONS:
            region = regions.read(y0, y1, x0, x1)
            np.testing.assert_array_equal(region, reference[y0:y1, x0:x1])
        np.testing.assert_array_equal(regions.read(50, 690, 7, 650, step=3), reference[50:690:3, 7:650:3])
        np.testing.assert_array_equal(regions.read_all(), reference)
        if layout == "one compressed strip":
            assert not regions.by_region  # decoded once, sliced
        else:
            assert regions.by_region


def test_ome_tiff_pyramid_gives_its_levels(tmp_path):
    image = random_pixels((900, 1100, 3))
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(image, subifds=2, tile=(256, 256), photometric="rgb")
        writer.write(image[::2, ::2], subfiletype=1, tile=(256, 256), photometric="rgb")
        writer.write(image[::4, ::4], subfiletype=1, tile=(256, 256), photometric="rgb")
    with open_regions(path) as regions:
        assert regions.level_shapes == [(900, 1100), (450, 550), (225, 275)]
        np.testing.assert_array_equal(regions.read(100, 400, 300, 1100), image[100:400, 300:1100])
        np.testing.assert_array_equal(regions.read(10, 200, 20, 275, level=2), image[::4, ::4][10:200, 20:275])
        levels = region_levels(regions, chunk=256, smallest=150)
        assert [level.shape[:2] for level in levels] == [(900, 1100), (450, 550), (225, 275), (113, 138)]
        np.testing.assert_array_equal(levels[1].compute(), image[::2, ::2])
        np.testing.assert_array_equal(levels[3].compute(), image[::4, ::4][::2, ::2])


def test_zarr_folders_are_read_by_region(tmp_path):
    image = random_pixels((700, 650, 3))
    path = tmp_path / "image.zarr"
    zarr.create_array(str(path), shape=image.shape, chunks=(128, 128, 3), dtype=image.dtype)[:] = image
    reference = zarr.open(str(path), mode="r")[:]
    with open_regions(path) as regions:
        assert regions.by_region and regions.shape == (700, 650, 3)
        for y0, y1, x0, x1 in REGIONS:
            np.testing.assert_array_equal(regions.read(y0, y1, x0, x1), reference[y0:y1, x0:x1])

    gray = random_pixels((2, 300, 200), np.uint16)  # channels first, as microscopy stores them
    group = zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    group.create_array("0", shape=gray.shape, chunks=(1, 64, 64), dtype=gray.dtype)[:] = gray
    with open_regions(tmp_path / "group.zarr") as regions:
        assert regions.shape == (300, 200, 3) and regions.dtype == np.uint16
        np.testing.assert_array_equal(regions.read(10, 90, 30, 170), rgb(gray[0])[10:90, 30:170])


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_png_and_jpeg_are_decoded_once_and_sliced(tmp_path, suffix):
    path = tmp_path / f"image{suffix}"
    Image.fromarray(random_pixels((700, 650, 3))).save(path)
    with Image.open(path) as image:
        reference = np.asarray(image.convert("RGB"))
    with open_regions(path) as regions:
        assert not regions.by_region
        for y0, y1, x0, x1 in REGIONS:
            np.testing.assert_array_equal(regions.read(y0, y1, x0, x1), reference[y0:y1, x0:x1])


def test_regions_are_clipped_to_the_image(tmp_path):
    path = tmp_path / "image.tif"
    image = random_pixels((300, 200, 3))
    tifffile.imwrite(path, image, tile=(64, 64), photometric="rgb")
    with open_regions(path) as regions:
        np.testing.assert_array_equal(regions.read(250, 400, -10, 500), image[250:300, 0:200])
        assert regions.read(300, 400, 0, 10).shape == (0, 10, 3)


def test_missing_and_damaged_files_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="missing.tif.*not found"):
        open_regions(tmp_path / "missing.tif")
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(ImageReadError, match="folder"):
        open_regions(folder)
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / "zarr.json").write_text("{not json")
    with pytest.raises(ImageReadError, match="bad.zarr"):
        open_regions(bad)


def test_a_region_of_a_large_tiled_tiff_costs_the_region_not_the_image(tmp_path):
    """8192 x 8192 RGB is 201 MB decoded; a 512 x 512 region is 0.8 MB."""
    side = 8192
    path = tmp_path / "large.tif"
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    with tifffile.TiffWriter(path) as writer:
        writer.write(iter([tile] * (side // 512) ** 2), shape=(side, side, 3), dtype=np.uint8,
                     tile=(512, 512), photometric="rgb", compression="zlib")
    tracemalloc.start()
    try:
        with open_regions(path) as regions:
            region = regions.read(3000, 3512, 5000, 5512)
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = np.tile(tile, (2, 2, 1))[3000 % 512:3000 % 512 + 512, 5000 % 512:5000 % 512 + 512]
    np.testing.assert_array_equal(region, expected)
    assert peak < side * side * 3 / 4, f"peak {peak / 2**20:.0f} MiB for a 0.75 MiB region"


def test_level_steps_end_at_the_smallest_side():
    assert level_steps(30000, 30000, 1024) == [1, 2, 4, 8, 16, 32]
    assert level_steps(1000, 500, 1024) == [1]


def test_region_stack_levels_pad_per_chunk(tmp_path):
    big = random_pixels((600, 500, 3), seed=1)
    small = random_pixels((100, 700, 3), seed=2)
    tifffile.imwrite(tmp_path / "big.tif", big, tile=(64, 64), photometric="rgb")
    Image.fromarray(small).save(tmp_path / "small.png")
    levels = region_stack_levels([tmp_path / "big.tif", tmp_path / "small.png"], [(600, 500), (100, 700)],
                                 chunk=128, smallest=200)
    assert [level.shape for level in levels] == [(2, 600, 700, 3), (2, 300, 350, 3), (2, 150, 175, 3)]
    full = levels[0].compute()
    expected = np.zeros((2, 600, 700, 3), np.uint8)
    expected[0, :600, :500] = big
    expected[1, :100, :700] = small
    np.testing.assert_array_equal(full, expected)
    np.testing.assert_array_equal(levels[2].compute(), expected[:, ::4, ::4])


@pytest.mark.parametrize("kind", ["uint16 tiled TIFF", "float32 Zarr"])
def test_the_percentiles_of_a_large_image_come_from_a_strided_read_equal_to_the_whole_images(tmp_path, kind):
    """The normalization's percentiles of an image read by region are those of the image decoded
    whole (the same strided subsample), and the strided read holds a block (2048 px), not the image."""
    from napari_faster_rcnn.core.data.intensity import channel_percentiles, sample_stride
    from napari_faster_rcnn.core.data.regions import sampled_percentiles

    height, width = 600, 12000  # a stride of 6; six blocks wide
    rng = np.random.default_rng(3)
    if kind.startswith("uint16"):
        image = (rng.gamma(2.0, 900.0, (height, width))).clip(0, 65535).astype(np.uint16)
        path = tmp_path / "large.tif"
        tifffile.imwrite(path, image, tile=(256, 256), photometric="minisblack", compression="zlib")
    else:
        image = rng.normal(0.0, 3.0, (height, width)).astype(np.float32)
        image[::7, ::5] = np.nan
        path = tmp_path / "large.zarr"
        zarr.create_array(str(path), shape=image.shape, chunks=(256, 256), dtype=image.dtype)[:] = image
    assert sample_stride(height, width) > 1
    whole = channel_percentiles(rgb(image), (1.0, 99.8))
    tracemalloc.start()
    try:
        with open_regions(path) as regions:
            assert regions.by_region
            low, high = sampled_percentiles(regions, (1.0, 99.8))
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(low, whole[0])
    np.testing.assert_array_equal(high, whole[1])
    decoded = height * width * 3 * image.itemsize  # the image as read_image gives it
    assert peak < decoded / 3, f"peak {peak / 2**20:.1f} MiB for a {decoded / 2**20:.0f} MiB image"


def _microscope_rule(channels: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` channels as the detector's 3 by the documented rule: 1 repeated, 2 and a third of zeros."""
    if len(channels) == 1:
        return np.repeat(channels, 3, axis=0).transpose(1, 2, 0)
    padded = np.concatenate([channels, np.zeros((3 - len(channels), *channels.shape[1:]), channels.dtype)])
    return padded.transpose(1, 2, 0)


@pytest.mark.parametrize("store", ["ome-tiff", "zarr"])
def test_regions_of_a_two_channel_image_take_its_channels_by_the_channels_rule(tmp_path, store):
    # A large 2-channel fluorescence image read by region (tiled training, prediction, display) gives what
    # read_image gives: channel 0, channel 1 and zeros, not channel 0 as gray (the rule for gray and alpha).
    rng = np.random.default_rng(8)
    channels = rng.integers(0, 4096, (2, 300, 260), dtype=np.uint16)
    if store == "zarr":
        path = tmp_path / "cells.zarr"  # OME-NGFF: its axes named
        group = zarr.open_group(str(path), mode="w")
        group.create_array("0", shape=channels.shape, chunks=(1, 64, 64), dtype=channels.dtype)[:] = channels
        group.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": name} for name in "cyx"],
                                       "datasets": [{"path": "0"}]}]
    else:
        path = tmp_path / "cells.ome.tif"
        tifffile.imwrite(path, channels, metadata={"axes": "CYX"}, tile=(64, 64))
    expected = _microscope_rule(channels)
    with open_regions(path) as regions:
        assert regions.microscope and regions.channels == 2
        np.testing.assert_array_equal(regions.read(10, 250, 30, 200), expected[10:250, 30:200])
        np.testing.assert_array_equal(regions.read(0, 300, 0, 260, step=3), expected[::3, ::3])
        np.testing.assert_array_equal(regions.read(5, 70, 7, 90, keep_channels=True),
                                      channels[:, 5:70, 7:90].transpose(1, 2, 0))
    np.testing.assert_array_equal(read_image(path), expected)


def test_a_four_channel_image_is_read_by_region_for_display_and_refused_for_the_detector(tmp_path):
    channels = np.arange(4 * 40 * 50, dtype=np.uint16).reshape(4, 40, 50)
    path = tmp_path / "stains.ome.tif"
    tifffile.imwrite(path, channels, metadata={"axes": "CYX"}, tile=(16, 16))
    with open_regions(path) as regions:
        np.testing.assert_array_equal(regions.read(0, 40, 0, 50, keep_channels=True), channels.transpose(1, 2, 0))
        with pytest.raises(ImageReadError, match="stains.ome.tif: 4 channels, and no rule says which three"):
            regions.read(0, 8, 0, 8)
        levels = region_levels(regions, keep_channels=True, smallest=16)
        assert [level.shape for level in levels] == [(40, 50, 4), (20, 25, 4), (10, 13, 4)]
        np.testing.assert_array_equal(np.asarray(levels[1]), channels[:, ::2, ::2].transpose(1, 2, 0))


def test_each_channel_layer_of_a_block_reads_it_once(tmp_path, monkeypatch):
    # napari shows a multichannel level as a layer per channel, each asking for the same blocks in turn
    from napari_faster_rcnn.core.data import regions as regions_module

    path = tmp_path / "stains.ome.tif"
    tifffile.imwrite(path, np.ones((4, 64, 64), np.uint16), metadata={"axes": "CYX"}, tile=(16, 16))
    reads = []
    original = regions_module.ImageRegions.read
    monkeypatch.setattr(regions_module.ImageRegions, "read",
                        lambda self, *args, **kwargs: reads.append(args) or original(self, *args, **kwargs))
    with open_regions(path) as regions:
        level = region_levels(regions, keep_channels=True, chunk=32)[0]
        reads.clear()
        for channel in range(4):  # as napari's channel_axis splits it
            np.asarray(level[..., channel])
    assert len(reads) == 4  # its four blocks, once each
