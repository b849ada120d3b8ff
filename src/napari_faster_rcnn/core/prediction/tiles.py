"""Tiled prediction: a grid of overlapping tiles over a large image, and the tiling
chosen for a model (the merge of the tiles' detections is :mod:`.tile_merge`).

The grid
    :func:`tile_grid` cuts an image of any size into tiles of ``tile x tile``
    pixels (a side shorter than the tile gives tiles as long as that side)
    that overlap their neighbours by at least ``overlap`` of the tile. Tiles
    start every ``round(tile * (1 - overlap))`` pixels along each axis; the
    last row and column are shifted back so that they end on the image's
    border (they overlap their neighbour more; nothing is padded), so the
    tiles cover the image exactly. Tiles are numbered row by row.

The merge of the tiles' detections is in :mod:`.tile_merge`.

Tiling defaults (:func:`default_tiling`)
    The tile is as large as the training images at the scale the model saw
    them: a tile of that size is resized by the model exactly as the (median)
    training image was, so objects reach the model at their training size. A
    checkpoint records its training images' median size and box size
    (``training_images``); without that record the tile is the model's
    ``min_size``, which the model passes at its own scale (no resize). The
    overlap is the training boxes' 95th percentile side over the tile (an
    object of that size lies whole in some tile), from 0.1 to 0.5; 0.2
    without a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_OVERLAP",
    "EDGE_TOLERANCE",
    "MATCH_THRESHOLD",
    "TileGrid",
    "Tiling",
    "chosen_tiling",
    "default_tiling",
    "tile_grid",
]

#: The overlap without a record of the training boxes.
DEFAULT_OVERLAP = 0.2
#: Pixels within which a box reaches a tile's edge (see :mod:`.tile_merge`).
EDGE_TOLERANCE = 2.0
#: Agreement (IoU on the part two tiles both see) for two boxes to be one object.
MATCH_THRESHOLD = 0.5
#: The smallest tile side accepted (0 turns tiling off).
MIN_TILE = 16
#: The range of the default overlap.
_OVERLAP_RANGE = (0.1, 0.5)


# --- settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tiling:
    """How to tile images for prediction.

    Attributes
    ----------
    tile : int
        The tile's side in image pixels; 0: every image in one pass, whole.
    overlap : float
        The least overlap of neighbouring tiles, as a fraction of the tile (0 to 0.9).
    edge_tolerance : float
        Pixels within which a box reaches a tile's edge (see the module docstring).
    match_threshold : float
        The agreement for two boxes of neighbouring tiles to be one object.
    """

    tile: int = 0
    overlap: float = DEFAULT_OVERLAP
    edge_tolerance: float = EDGE_TOLERANCE
    match_threshold: float = MATCH_THRESHOLD

    def __post_init__(self):
        if isinstance(self.tile, bool) or not isinstance(self.tile, (int, np.integer)) or (
                self.tile != 0 and self.tile < MIN_TILE):
            raise ValueError(f"the tile size must be 0 (the whole image in one pass) or at least {MIN_TILE} "
                             f"pixels, got {self.tile!r}")
        object.__setattr__(self, "tile", int(self.tile))
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, (int, float)) or not (
                0.0 <= float(self.overlap) <= 0.9):
            raise ValueError(f"the tile overlap must be a fraction from 0 to 0.9, got {self.overlap!r}")
        object.__setattr__(self, "overlap", float(self.overlap))
        if not 0.0 <= float(self.edge_tolerance) < (self.tile / 2 if self.tile else np.inf):
            raise ValueError(f"edge_tolerance must be from 0 to half the tile, got {self.edge_tolerance!r}")
        if not 0.0 < float(self.match_threshold) <= 1.0:
            raise ValueError(f"match_threshold must be above 0 and at most 1, got {self.match_threshold!r}")

    @property
    def enabled(self) -> bool:
        return self.tile > 0

    def tiles_image(self, image_size: tuple[int, int]) -> bool:
        """Whether an image of ``(height, width)`` is cut into tiles (it is larger than a tile)."""
        return self.enabled and max(int(image_size[0]), int(image_size[1])) > self.tile

    def passes(self, image_size: tuple[int, int]) -> int:
        """Forward passes for an image of ``(height, width)``: its tiles, or 1 when it is not tiled."""
        return len(self.grid(image_size)) if self.tiles_image(image_size) else 1

    def grid(self, image_size: tuple[int, int]) -> TileGrid:
        """The tiles of an image of ``(height, width)`` (one tile when it is not larger than a tile)."""
        if not self.tiles_image(image_size):
            height, width = (int(side) for side in image_size)
            return tile_grid(height, width, max(height, width, 1), 0.0)
        return tile_grid(int(image_size[0]), int(image_size[1]), self.tile, self.overlap)

    def describe(self) -> str:
        if not self.enabled:
            return "whole images (no tiles)"
        return f"tiles of {self.tile} px overlapping by {self.overlap:g}"


def chosen_tiling(config=None, training_images: Mapping | None = None, tile: int | None = None,
                  overlap: float | None = None) -> Tiling:
    """:func:`default_tiling` with the ``tile`` size and ``overlap`` given (None: the default).

    Raises ``ValueError`` for a tile size or overlap out of range.
    """
    default = default_tiling(config, training_images)
    return Tiling(tile=default.tile if tile is None else tile,
                  overlap=default.overlap if overlap is None else overlap)


def default_tiling(config=None, training_images: Mapping | None = None) -> Tiling:
    """The tiling a model predicts large images with by default (see the module docstring).

    Parameters
    ----------
    config : ModelConfig, optional
        Its ``min_size`` and ``max_size``.
    training_images : mapping, optional
        What the checkpoint recorded of its training images: ``height`` and
        ``width`` (medians) and ``box_side`` (the 95th percentile of the boxes'
        longer side), as :attr:`LoadedCheckpoint.training_images` holds them.
    """
    min_size = int(getattr(config, "min_size", 800))
    max_size = int(getattr(config, "max_size", 1333))
    tile, overlap = min_size, DEFAULT_OVERLAP
    record = dict(training_images or {})
    try:
        height, width = float(record["height"]), float(record["width"])
    except (KeyError, TypeError, ValueError):
        height = width = 0.0
    if height > 0 and width > 0:
        short, long = min(height, width), max(height, width)
        # the model resizes by min(min_size / short, max_size / long); a square tile of this side, by the same
        tile = int(round(max(short, long * min_size / max_size)))
    tile = max(tile, MIN_TILE)
    try:
        box_side = float(record["box_side"])
    except (KeyError, TypeError, ValueError):
        box_side = 0.0
    if box_side > 0:
        overlap = float(np.clip(round(box_side / tile, 2), *_OVERLAP_RANGE))
    return Tiling(tile=tile, overlap=overlap)


# --- the grid ------------------------------------------------------------------------


def _axis_starts(length: int, tile: int, overlap: float) -> np.ndarray:
    if length <= tile:
        return np.zeros(1, dtype=np.int64)
    stride = max(1, int(round(tile * (1.0 - overlap))))
    count = -(-(length - tile) // stride) + 1
    return np.minimum(np.arange(count, dtype=np.int64) * stride, length - tile)


@dataclass(frozen=True)
class TileGrid:
    """Tiles over an image: tile ``k`` is row ``k // columns``, column ``k % columns``.

    Attributes
    ----------
    image_size : (height, width)
    tile_size : (height, width)
        Every tile's size (the tile side, or the image's side when shorter).
    x_starts, y_starts : int64 arrays
        Where the columns and rows start, ascending.
    """

    image_size: tuple[int, int]
    tile_size: tuple[int, int]
    x_starts: np.ndarray
    y_starts: np.ndarray

    @property
    def columns(self) -> int:
        return len(self.x_starts)

    @property
    def rows(self) -> int:
        return len(self.y_starts)

    def __len__(self) -> int:
        return self.rows * self.columns

    @property
    def rects(self) -> np.ndarray:
        """``(n, 4)`` int64 ``x0, y0, x1, y1`` of every tile (``x1``, ``y1`` exclusive), row by row."""
        ys, xs = np.meshgrid(self.y_starts, self.x_starts, indexing="ij")
        xs, ys = xs.reshape(-1), ys.reshape(-1)
        return np.stack([xs, ys, xs + self.tile_size[1], ys + self.tile_size[0]], axis=1)

    def owner(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The tile owning each point: the overlap of two neighbours is split at its middle."""
        return (np.searchsorted(self._bounds(self.y_starts, self.tile_size[0]), y, side="right") * self.columns
                + np.searchsorted(self._bounds(self.x_starts, self.tile_size[1]), x, side="right"))

    def exclusive(self) -> np.ndarray:
        """``(n, 4)``: the part of each tile no other tile covers, ``-inf``/``inf`` at the image's border."""
        bounds = []
        for starts, side in ((self.x_starts, self.tile_size[1]), (self.y_starts, self.tile_size[0])):
            ends = starts + side
            low = np.concatenate([[-np.inf], ends[:-1]]).astype(np.float64)
            high = np.concatenate([starts[1:], [np.inf]]).astype(np.float64)
            bounds.append((low, high))
        (x_low, x_high), (y_low, y_high) = bounds
        row, column = np.divmod(np.arange(len(self)), self.columns)
        return np.stack([x_low[column], y_low[row], x_high[column], y_high[row]], axis=1)

    @staticmethod
    def _bounds(starts: np.ndarray, side: int) -> np.ndarray:
        return (starts[1:] + starts[:-1] + side) / 2.0


def tile_grid(height: int, width: int, tile: int, overlap: float) -> TileGrid:
    """The tiles over an image of ``height x width``: sides of ``tile`` (or the image's
    side, when shorter), overlapping by at least ``overlap`` of the tile, the last row and
    column shifted back inside the image (see the module docstring)."""
    if height < 1 or width < 1:
        raise ValueError(f"an image of {height} x {width} pixels has no tiles")
    if tile < 1:
        raise ValueError(f"the tile size must be at least 1 pixel, got {tile}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"the tile overlap must be from 0 to below 1, got {overlap}")
    return TileGrid(
        image_size=(int(height), int(width)),
        tile_size=(min(int(tile), int(height)), min(int(tile), int(width))),
        x_starts=_axis_starts(int(width), int(tile), float(overlap)),
        y_starts=_axis_starts(int(height), int(tile), float(overlap)),
    )
