"""Training on tiles of large images: where the tiles are, and which boxes each one keeps.

A model resizes every image to its ``min_size``/``max_size``; on an image far
larger than that, small objects shrink to nothing. Training on tiles instead
shows the model the image at its own scale, as tiled prediction sees it.

- **Windows** are ``(x0, y0, x1, y1)`` pixel rectangles of an image, in the
  project's continuous box coordinates (the image spans ``[0, W] x [0, H]``).
  A tile is ``tile_size`` square, or the whole extent of a side shorter than
  that (an image smaller than a tile is used whole).
- **Validation** cuts each image into a fixed grid (:func:`grid_windows`): as
  few tiles as cover the image, spread evenly so that the last one ends at the
  border (neighbours overlap a little when the size does not divide). The same
  images always give the same tiles.
- **Training** draws a new window on every access (:func:`random_window`):
  with probability ``object_probability`` one that contains a randomly chosen
  box's centre (so that crowded and sparse parts are both seen), else a
  uniformly random one (background between objects).
- **Boxes cut by a tile border** (:func:`boxes_in_window`) are kept, clipped to
  the tile, when at least ``min_visible`` of their area lies inside it
  (default :data:`MIN_VISIBLE`, half), and dropped otherwise. So a half-visible
  object is still an object to learn, and a sliver at the border is neither an
  object nor background the model is punished for finding.
- **Reading**: a tile of an image stored in tiles, strips or chunks (a tiled
  or striped TIFF, OME-TIFF, or a Zarr folder) is read alone (:func:`read_window`,
  through :mod:`~napari_faster_rcnn.core.data.regions`), when the image is not
  in the dataset's cache; other images are decoded whole, once, into the
  cache (within its memory limit) and cut from there. A tile read alone is
  scaled by the whole image's percentiles where the normalization needs them,
  taken once per image from a strided subsample
  (:func:`~napari_faster_rcnn.core.data.regions.sampled_percentiles`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from napari_faster_rcnn.core.data.annotations import Annotation

__all__ = [
    "MIN_VISIBLE",
    "OBJECT_PROBABILITY",
    "boxes_as_tile",
    "boxes_in_window",
    "check_tile_size",
    "grid_windows",
    "random_window",
    "read_tiff_window",
    "read_window",
    "tile_count",
]

#: A box cut by a tile border is kept when at least this fraction of its area is inside the tile.
MIN_VISIBLE = 0.5
#: Chance that a training tile is drawn around a random box rather than uniformly.
OBJECT_PROBABILITY = 0.5


def check_tile_size(tile_size) -> int:
    """``tile_size`` as an int: 0 (or None) for whole images, else at least 16 pixels."""
    if tile_size is None:
        return 0
    if isinstance(tile_size, bool) or int(tile_size) != tile_size or tile_size < 0:
        raise ValueError(f"tile_size must be a whole number of pixels (0: whole images), got {tile_size!r}")
    if 0 < tile_size < 16:
        raise ValueError(f"tile_size must be 0 (whole images) or at least 16 pixels, got {tile_size}")
    return int(tile_size)


def _starts(length: int, tile: int) -> list[int]:
    """Start offsets of the fewest ``tile``-long spans covering ``[0, length]``, spread evenly."""
    if length <= tile:
        return [0]
    count = math.ceil(length / tile)
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def grid_windows(height: int, width: int, tile_size: int) -> list[tuple[int, int, int, int]]:
    """The fixed grid of windows that covers an image, row by row (one window if it fits in a tile)."""
    if not tile_size:
        return [(0, 0, int(width), int(height))]
    tile_w, tile_h = min(tile_size, width), min(tile_size, height)
    return [(x, y, x + tile_w, y + tile_h) for y in _starts(height, tile_size) for x in _starts(width, tile_size)]


def tile_count(height: int, width: int, tile_size: int) -> int:
    """How many windows :func:`grid_windows` gives."""
    if not tile_size:
        return 1
    return len(_starts(height, tile_size)) * len(_starts(width, tile_size))


def _uniform(low: int, high: int, generator) -> int:
    """A whole number drawn uniformly from ``[low, high]``."""
    if high <= low:
        return int(low)
    return int(torch.randint(int(low), int(high) + 1, (1,), generator=generator))


def random_window(height: int, width: int, tile_size: int, boxes: np.ndarray,
                  object_probability: float = OBJECT_PROBABILITY,
                  generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """A random training window of an image with ``boxes`` (``(N, 4)`` xyxy).

    With probability ``object_probability`` (and at least one box) the window
    contains the centre of a box chosen uniformly; otherwise its position is
    uniform over the image. Random numbers come from torch (``generator``, or
    the global one, which DataLoader seeds per worker and epoch).
    """
    if not tile_size:
        return (0, 0, int(width), int(height))
    tile_w, tile_h = min(tile_size, width), min(tile_size, height)
    x_low, x_high, y_low, y_high = 0, width - tile_w, 0, height - tile_h
    if len(boxes) and float(torch.rand((), generator=generator)) < object_probability:
        box = boxes[int(torch.randint(len(boxes), (1,), generator=generator))]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        # windows [x, x + tile_w] holding cx: x in [cx - tile_w, cx], within the image
        x_low, x_high = max(x_low, math.ceil(cx - tile_w)), min(x_high, math.floor(cx))
        y_low, y_high = max(y_low, math.ceil(cy - tile_h)), min(y_high, math.floor(cy))
    x, y = _uniform(x_low, x_high, generator), _uniform(y_low, y_high, generator)
    return (x, y, x + tile_w, y + tile_h)


def boxes_in_window(boxes: np.ndarray, window, min_visible: float = MIN_VISIBLE) -> tuple[np.ndarray, np.ndarray]:
    """The boxes a window keeps, clipped to it and in its coordinates, and which of ``boxes`` they are.

    A box is kept when the part inside the window has an area and is at least
    ``min_visible`` of the box's own area (``min_visible`` 0: any part).

    Returns
    -------
    (clipped, keep)
        ``clipped`` ``(K, 4)`` float64 in window coordinates (origin at the
        window's top left), ``keep`` a boolean mask over ``boxes``.
    """
    if not 0.0 <= min_visible <= 1.0:
        raise ValueError(f"min_visible must be a fraction in [0, 1], got {min_visible!r}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = (float(value) for value in window)
    clipped = np.empty_like(boxes)
    clipped[:, 0] = np.clip(boxes[:, 0], x0, x1)
    clipped[:, 1] = np.clip(boxes[:, 1], y0, y1)
    clipped[:, 2] = np.clip(boxes[:, 2], x0, x1)
    clipped[:, 3] = np.clip(boxes[:, 3], y0, y1)
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1]) & (inside >= min_visible * area)
    clipped = clipped[keep] - np.array([x0, y0, x0, y0])
    return clipped, keep


def boxes_as_tile(size: tuple[int, int], annotation: Annotation, tile_size: int) -> tuple:
    """``(size, annotation)`` of an image as one tile of ``tile_size`` holding all its boxes: what fitting
    the model's sizes and anchors to tiles reads (only a box's size and its place relative to the
    feature map's cells matter there). Each box keeps its size (cut to the tile) and its offset
    modulo the room the tile leaves it, so every box lies inside; an image no larger than a tile
    is returned as it is."""
    height, width = size
    if height <= tile_size and width <= tile_size:
        return size, annotation
    tile = (min(height, tile_size), min(width, tile_size))
    boxes = np.asarray(annotation.boxes, dtype=np.float64).reshape(-1, 4)
    sides = np.minimum(boxes[:, 2:] - boxes[:, :2], [tile[1], tile[0]])
    room = np.array([tile[1], tile[0]], dtype=np.float64) - sides  # 0 for a box as large as the tile
    corners = np.mod(boxes[:, :2], np.where(room > 0, room, 1.0)) * (room > 0)
    return tile, Annotation(np.concatenate([corners, corners + sides], axis=1), list(annotation.labels))


def read_tiff_window(path, window, size: tuple[int, int]) -> np.ndarray | None:
    """:func:`read_window` for TIFF files only (None for any other file)."""
    if Path(path).suffix.lower() not in (".tif", ".tiff"):
        return None
    return read_window(path, window, size)


def read_window(path, window, size: tuple[int, int], channels=None) -> np.ndarray | None:
    """The pixels of ``window`` ``(x0, y0, x1, y1)`` of an image that can be read by region (a tiled
    or striped TIFF, OME-TIFF, a Zarr folder: :func:`~napari_faster_rcnn.core.data.regions.open_regions`),
    as ``(h, w, 3)`` of the image's type, reading only the tiles, strips or chunks it touches; None for
    other images (PNG, JPEG, a TIFF in one strip) or when the image is not ``size`` ``(height, width)``,
    so that the caller reads it whole. ``channels``: those the detector sees, as
    :func:`~napari_faster_rcnn.core.data.images.read_image` takes them (a microscope's channels on pages
    of their own, axes ``CYX``, read by region too)."""
    from napari_faster_rcnn.core.data.image_files import TIFF_SUFFIXES, ImageReadError
    from napari_faster_rcnn.core.data.regions import is_zarr_folder, open_regions

    path = Path(path)
    if not (is_zarr_folder(path) or path.suffix.lower() in TIFF_SUFFIXES):
        return None
    try:
        regions = open_regions(path)
    except ImageReadError:
        return None
    with regions:
        if not regions.by_region or (regions.height, regions.width) != tuple(size):
            return None
        x0, y0, x1, y1 = (int(value) for value in window)
        return regions.read(y0, y1, x0, x1, channels=channels)
