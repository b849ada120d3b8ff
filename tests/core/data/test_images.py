"""Reading images: huge ones (above Pillow's decompression-bomb limit), stacks, and every mode
read as Pillow itself reads it."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.images import image_header, image_info, read_image
from tests.large_images import HUGE_SIDE, lower_pillow_limit, write_blank_png

LOGGER = "napari_faster_rcnn.core.data.images"


def pillow_rgb(path) -> np.ndarray:
    """The reference: Pillow's own conversion to RGB, at Pillow's default limit."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def random_image(mode: str, seed: int = 0, size=(50, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32) * 1000)
    rgba = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8))
    if mode == "P":
        return rgba.convert("RGB").quantize(colors=17)  # a palette of 17 colours
    return rgba.convert(mode)


def expected_pixels(image: Image.Image, path) -> np.ndarray:
    if image.mode in ("I;16", "F"):
        stored = np.asarray(image)
        return np.repeat(stored[:, :, None], 3, axis=2).astype(np.uint16 if image.mode == "I;16" else np.float32)
    return pillow_rgb(path)


# --- huge images ----------------------------------------------------------------


def test_a_huge_png_has_its_size_from_the_header_and_pillows_limit_stays_for_the_process(tmp_path):
    path = write_blank_png(tmp_path / "huge.png")  # 196 million pixels, above the 179 million Pillow opens
    limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        assert image_info(path) == (HUGE_SIDE, HUGE_SIDE, np.dtype(np.uint8))
    assert Image.MAX_IMAGE_PIXELS == limit
    with pytest.raises(Image.DecompressionBombError):  # other code in the process keeps Pillow's guard
        Image.open(path)


@pytest.mark.parametrize("limit", [500, 1500], ids=["Pillow refuses", "Pillow warns"])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "F"])
def test_images_above_pillows_limit_read_as_below_it(tmp_path, monkeypatch, mode, limit):
    image = random_image(mode, seed=len(mode))  # 50 x 40 = 2000 pixels
    path = tmp_path / ("image.tif" if mode == "F" else "image.png")
    image.save(path)
    expected = expected_pixels(image, path)
    lower_pillow_limit(monkeypatch, limit)
    if limit == 500:
        with pytest.raises(Image.DecompressionBombError):
            Image.open(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels = read_image(path)
        info = image_info(path)
    np.testing.assert_array_equal(pixels, expected)
    assert pixels.dtype == expected.dtype and info == (40, 50, pixels.dtype)


def test_pixels_that_do_not_fit_in_memory_are_an_image_read_error_naming_the_file(tmp_path, monkeypatch):
    path = write_blank_png(tmp_path / "huge.png")
    monkeypatch.setattr("napari_faster_rcnn.core.data.memory.available_memory", lambda: 2**30)
    with pytest.raises(ImageReadError, match="14000 x 14000 pixels need about 1.1 GiB to decode, more than "
                       "the 1.0 GiB of memory available") as error:
        read_image(path)
    assert error.value.path == path
    assert image_info(path)[:2] == (HUGE_SIDE, HUGE_SIDE)  # the header still reads


@pytest.mark.parametrize("name", ["photo.png", "scan.tif"])
def test_a_folder_named_like_an_image_is_said_to_be_a_folder(tmp_path, name):
    (tmp_path / name).mkdir()
    for read in (read_image, image_info):
        with pytest.raises(ImageReadError, match="is a folder, not an image file") as error:
            read(tmp_path / name)
        assert error.value.path == tmp_path / name


# --- TIFF: every mode as Pillow reads it, and stacks ------------------------------


@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGB", "RGBA", "P", "CMYK", "I;16", "F"])
def test_a_single_page_tiff_reads_as_pillow_reads_it(tmp_path, mode):
    image = random_image(mode, seed=3)
    path = tmp_path / "image.tif"
    image.save(path)
    expected = expected_pixels(image, path)
    pixels = read_image(path)
    np.testing.assert_array_equal(pixels, expected)
    assert pixels.dtype == expected.dtype and image_info(path) == (40, 50, pixels.dtype)


def stack_notes(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if "page 1 of" in record.getMessage()]


def test_a_multi_page_tiff_is_its_first_page_with_one_warning_naming_the_file(tmp_path, caplog):
    pages = np.random.default_rng(0).integers(0, 256, (3, 20, 30), dtype=np.uint8)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, pages, photometric="minisblack")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        pixels = read_image(path)
        header = image_header(path)
        read_image(path)
    np.testing.assert_array_equal(pixels, np.repeat(pages[0][:, :, None], 3, axis=2))
    assert (header.height, header.width, header.pages) == (20, 30, 3)
    assert stack_notes(caplog) == [f"{path}: a file of 3 pages; read page 1 of 3 as a 2-D image"]


def write_rgb_stack(path, kind: str) -> np.ndarray:
    """Three RGB pages; returns the first as (H, W, 3)."""
    rng = np.random.default_rng(1)
    if kind == "float32":
        pages = rng.random((3, 20, 30, 3), dtype=np.float32)
    elif kind == "uint16":
        pages = rng.integers(0, 65536, (3, 20, 30, 3), dtype=np.uint16)
    else:
        pages = rng.integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    if kind == "planar":
        tifffile.imwrite(path, pages.transpose(0, 3, 1, 2), photometric="rgb", planarconfig="separate")
    elif kind == "LZW, by Pillow":  # a codec tifffile needs imagecodecs for: Pillow reads it
        first, *rest = (Image.fromarray(page) for page in pages)
        first.save(path, save_all=True, append_images=rest, compression="tiff_lzw")
    else:
        tifffile.imwrite(path, pages, photometric="rgb", compression="zlib" if kind == "deflate" else None)
    return pages[0]


@pytest.mark.parametrize("kind", ["uint8", "deflate", "planar", "float32", "uint16", "LZW, by Pillow"])
def test_an_rgb_multi_page_tiff_is_its_first_page(tmp_path, caplog, kind):
    path = tmp_path / "rgb stack.tif"
    first = write_rgb_stack(path, kind)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        pixels = read_image(path)
    np.testing.assert_array_equal(pixels, first)
    assert pixels.dtype == first.dtype and image_info(path) == (20, 30, first.dtype)
    assert stack_notes(caplog) == [f"{path}: a file of 3 pages; read page 1 of 3 as a 2-D image"]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
def test_a_gray_image_is_its_value_in_each_of_three_channels(dtype):
    from napari_faster_rcnn.core.data.channels import as_rgb, gray_to_rgb

    gray = (np.random.default_rng(0).integers(0, 200, (37, 53)) > 90 if dtype is bool
            else np.random.default_rng(0).integers(0, 200, (37, 53)).astype(dtype))
    expected = np.repeat(gray[:, :, None], 3, axis=2)  # the reference: numpy's repeat
    for rgb in (gray_to_rgb(gray), as_rgb(gray), as_rgb(gray[:, :, None]), as_rgb(gray[::2, ::3])[::1]):
        assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == gray.dtype and rgb.flags.c_contiguous
    np.testing.assert_array_equal(gray_to_rgb(gray), expected)
    np.testing.assert_array_equal(as_rgb(gray[::2, ::3]), expected[::2, ::3])
