"""Shared fixtures: small generated datasets, so the tests never need ../shared."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset


def write_image(path, height=40, width=60, mode="RGB", seed=0):
    """Write a random image of ``mode`` (RGB, RGBA, L, I;16) and return its pixels as read back."""
    rng = np.random.default_rng(seed)
    if mode == "RGB":
        array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    elif mode == "RGBA":
        array = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    elif mode == "L":
        array = rng.integers(0, 256, (height, width), dtype=np.uint8)
    elif mode == "I;16":
        array = rng.integers(0, 65536, (height, width), dtype=np.uint16)
    else:
        raise ValueError(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


@pytest.fixture
def tutorial_dataset(tmp_path):
    """Six synthetic images in input/ with their .pt annotations in target/."""
    return write_synthetic_dataset(tmp_path / "shapes", n_images=6, seed=3, height=64, width=80)


@pytest.fixture
def side_by_side_dataset(tmp_path):
    """Three images of different sizes with .json annotations beside them; one unlabeled."""
    folder = tmp_path / "beside"
    write_image(folder / "a.png", 40, 60, seed=1)
    write_image(folder / "b.jpg", 50, 30, seed=2)
    write_image(folder / "c.png", 20, 20, seed=3)
    save_annotation(folder / "a.json", Annotation([[1, 2, 30, 20], [10, 10, 59, 39]], ["cat", "dog"]))
    save_annotation(folder / "b.json", Annotation([[0, 0, 29.5, 49.5]], ["dog"]))
    return folder


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Fail early, with the fix, when no display can be had for the GUI tests."""
    import os
    import shutil
    import sys

    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and shutil.which("Xvfb") is None:
        raise pytest.UsageError(
            "the GUI tests need a display: install Xvfb and Mesa OpenGL "
            "(apt-get install xvfb libgl1-mesa-dri), or set DISPLAY"
        )


def crowded_annotation(count: int, size: int, classes, seed: int = 0):
    """``count`` boxes of 1-30 px inside a ``size`` x ``size`` image, at multiples of 1/8 px (exact in
    napari's float32), labeled at random with ``classes``."""
    rng = np.random.default_rng(seed)
    corner = rng.integers(0, (size - 40) * 8, (count, 2)) / 8
    boxes = np.concatenate([corner, corner + rng.integers(8, 30 * 8, (count, 2)) / 8], axis=1)
    return Annotation(boxes, [classes[k] for k in rng.integers(0, len(classes), count)], classes=list(classes))


def mixed_folder(tmp_path, side: int = 64, planes: int = 4):
    """A dataset folder mixing 2-D images and a stack: a.png and b.png (``side`` px, random RGB; a.png
    labeled with one box) and movie.tif, a ``(planes, side, side)`` uint16 stack with one box on plane 1,
    its one labeled plane. Returns ``(folder, {name: pixels of the PNG}, the stack's pixels)``."""
    import tifffile

    folder = tmp_path / "mixed"
    folder.mkdir()
    pngs = {name: write_image(folder / f"{name}.png", side, side, seed=seed) for seed, name in enumerate(("a", "b"))}
    movie = np.random.default_rng(3).integers(0, 4096, (planes, side, side), dtype=np.uint16)
    tifffile.imwrite(folder / "movie.tif", movie, photometric="minisblack")
    save_annotation(folder / "a.json", Annotation(np.array([[2.0, 3, 12, 14]]), ["cell"]))
    save_annotation(folder / "movie.pt", Annotation(np.array([[4.0, 4, 10, 9]]), ["cell"], planes=np.array([[1]]),
                                                    labeled_planes=np.array([[1]])))
    return folder, pngs, movie


def layers_by_name(viewer) -> dict:
    return {layer.name: layer for layer in viewer.layers}


def page_rectangle(page: int, box) -> np.ndarray:
    """The rectangle of ``box`` (x0, y0, x1, y1) on page ``page`` of a paged box layer, as napari holds it."""
    from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles

    (rectangle,) = boxes_to_rectangles(np.array([box], dtype=float))
    return np.concatenate([np.full((4, 1), float(page)), rectangle], axis=1)
