"""The pages of a folder's lazy image stack read ahead (issue 13: paging a folder whose pages include a
stack's planes): the page napari asks for next comes from the read ahead, with the same pixels, and a
page that cannot be read ahead is read (and reported) as before."""

import time

import numpy as np
import tifffile
from PIL import Image

from napari_faster_rcnn.core.data import read_ahead
from napari_faster_rcnn.core.data.image_stack import lazy_image_stack
from napari_faster_rcnn.core.data.read_ahead import page_read_ahead
from tests.conftest import write_image


def folder_pages(tmp_path):
    """a.png (30 x 40 RGB), b.png (20 x 25 gray) and the 3 planes of movie.tif (30 x 40 uint16)."""
    a = write_image(tmp_path / "a.png", 30, 40, seed=1)
    b = write_image(tmp_path / "b.png", 20, 25, mode="L", seed=2)
    movie = np.random.default_rng(4).integers(0, 4096, (3, 30, 40), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", movie, photometric="minisblack")
    paths = [tmp_path / "a.png", tmp_path / "b.png"] + [tmp_path / "movie.tif"] * 3
    sizes = [(30, 40), (20, 25)] + [(30, 40)] * 3
    planes = [None, None, (0,), (1,), (2,)]
    expected = np.zeros((5, 30, 40, 3), np.uint16)  # the reference: each page built by hand, padded
    expected[0] = a
    expected[1, :20, :25] = np.asarray(b)[:, :, None]
    expected[2:] = movie[:, :, :, None]
    return lazy_image_stack(paths, sizes, dtype=np.uint16, planes=planes), expected


def settle(ahead, timeout=5.0):
    """Wait until the pages asked for are read."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(not future.done() for future, _ in ahead._pending.values()):
        time.sleep(0.01)


def test_pages_read_ahead_are_the_pages_and_are_taken_once(tmp_path):
    stack, expected = folder_pages(tmp_path)
    ahead = page_read_ahead(stack)
    assert ahead is not None and ahead.enabled and page_read_ahead(np.zeros((5, 2, 2, 3))) is None
    assert read_ahead.read_ahead(stack, [1, 3])
    settle(ahead)
    np.testing.assert_array_equal(np.asarray(stack[3]), expected[3])  # from the read ahead
    assert ahead.used == 1
    np.testing.assert_array_equal(np.asarray(stack[1]), expected[1])
    assert ahead.used == 2
    np.testing.assert_array_equal(np.asarray(stack[3]), expected[3])  # taken once: read again
    np.testing.assert_array_equal(np.asarray(stack[0]), expected[0])  # never asked for: read
    assert ahead.used == 2
    np.testing.assert_array_equal(np.asarray(stack), expected)  # the whole stack, page by page


def test_a_request_drops_the_pages_no_longer_asked_for_and_pages_outside_the_stack(tmp_path):
    stack, expected = folder_pages(tmp_path)
    ahead = page_read_ahead(stack)
    ahead.request([4, 5, -1, 2, 3])  # at most KEEP pages, inside the stack
    assert sorted(ahead._pending) == [2, 4]
    ahead.request([0])
    assert sorted(ahead._pending) == [0]
    settle(ahead)
    np.testing.assert_array_equal(np.asarray(stack[4]), expected[4])
    assert ahead.used == 0


def test_a_page_that_fails_ahead_is_read_again_and_reported_naming_its_file(tmp_path):
    errors = []
    write_image(tmp_path / "a.png", 30, 40, seed=1)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    stack = lazy_image_stack([tmp_path / "a.png", tmp_path / "broken.png"], [(30, 40), (30, 40)],
                             on_error=errors.append)
    ahead = page_read_ahead(stack)
    ahead.request([1])
    settle(ahead)
    np.testing.assert_array_equal(np.asarray(stack[1]), np.zeros((30, 40, 3), np.uint8))
    assert ahead.used == 0 and len(errors) == 1 and "broken.png" in str(errors[0])


def test_pages_over_the_size_limit_are_never_read_ahead(tmp_path, monkeypatch):
    monkeypatch.setattr(read_ahead, "MAX_PAGE_BYTES", 100)
    stack, expected = folder_pages(tmp_path)
    ahead = page_read_ahead(stack)
    assert not ahead.enabled
    ahead.request([1])
    assert not ahead._pending
    np.testing.assert_array_equal(np.asarray(stack[1]), expected[1])


def test_a_png_read_ahead_matches_pillow(tmp_path):
    write_image(tmp_path / "a.png", 16, 16, seed=3)
    stack = lazy_image_stack([tmp_path / "a.png"], [(16, 16)])
    page_read_ahead(stack).request([0])
    settle(page_read_ahead(stack))
    np.testing.assert_array_equal(np.asarray(stack[0]), np.asarray(Image.open(tmp_path / "a.png").convert("RGB")))
