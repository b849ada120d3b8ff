"""Tiles of a training dataset's images, as training on large images takes them.

A :class:`TileDataset` wraps a :class:`~.dataset.DetectionDataset` (which reads,
caches, normalizes and augments the pixels, see
:meth:`~.dataset.DetectionDataset.window_item`) and chooses the windows: a random
tile per access for training; for validation, the tiles tiled prediction cuts
(:func:`~napari_faster_rcnn.core.prediction.tiles.tile_grid`, overlapping as the
model will predict by default: the data module passes ``overlap``), each target
telling its image and place, so that validation merges them and measures whole
images as ``evaluate`` measures ``predict``'s files (:mod:`.validation`). The
training windows and the rule for boxes cut by a tile border are in :mod:`.tiling`.
"""

from __future__ import annotations

import torch

from napari_faster_rcnn.core.prediction.tiles import DEFAULT_OVERLAP, tile_grid
from napari_faster_rcnn.core.training.dataset import DetectionDataset
from napari_faster_rcnn.core.training.tiling import (
    MIN_VISIBLE,
    OBJECT_PROBABILITY,
    boxes_in_window,
    grid_windows,
    random_window,
)

__all__ = ["TileDataset"]


class TileDataset(torch.utils.data.Dataset):
    """Tiles of the images of a :class:`DetectionDataset` (see :mod:`.tiling`).

    ``train`` True: item ``i`` is a new random tile of image ``i``'s image on every access (around a
    random box with probability ``object_probability``, else anywhere), and the epoch has as many items
    as :func:`~.tiling.grid_windows` has tiles, each image drawn as often as its grid has tiles.
    ``train`` False: the tiles tiled prediction cuts from every image (overlapping by ``overlap``), in
    order, each target with ``source`` (the image's index), ``tile`` (the tile's index in its image's
    grid), ``offset`` (its top-left corner, x and y), ``image_size``, ``tile_side``, ``overlap``, and, on
    an image's first tile only, the image's own boxes and labels (``image_boxes``, ``image_labels``), for
    :class:`~.validation.ValidationCollector`. Boxes cut by a
    tile border are kept, clipped, when at least ``min_visible`` of their area is inside. Images no
    larger than a tile are used whole. Augmentation (the base dataset's ``transform``) runs on the tile.
    """

    def __init__(self, base: DetectionDataset, tile_size: int, train: bool,
                 min_visible: float = MIN_VISIBLE, object_probability: float = OBJECT_PROBABILITY,
                 generator: torch.Generator | None = None, overlap: float = DEFAULT_OVERLAP):
        if not 0.0 <= object_probability <= 1.0:
            raise ValueError(f"object_probability must be in [0, 1], got {object_probability!r}")
        self.base = base
        self.tile_size = int(tile_size)
        self.train = bool(train)
        self.min_visible = float(min_visible)
        self.object_probability = float(object_probability)
        self.generator = generator
        self.overlap = float(overlap)
        self.windows: list[tuple[int, tuple[int, int, int, int]]] = [
            (index, window)
            for index, (height, width) in enumerate(base.image_sizes)
            for window in (grid_windows(height, width, self.tile_size) if self.train
                           else validation_windows(height, width, self.tile_size, self.overlap))
        ]
        self._first_tile: dict[int, int] = {}  # (validation) an image's first item
        for position, (index, _) in enumerate(self.windows):
            self._first_tile.setdefault(index, position)

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def classes(self) -> list[str]:
        return self.base.classes

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} tiles")
        image_index, window = self.windows[index]
        if self.train:
            height, width = self.base.image_sizes[image_index]
            boxes, _ = self.base.box_arrays(image_index)
            window = random_window(height, width, self.tile_size, boxes, self.object_probability, self.generator)
        image, target = self.base.window_item(image_index, window, self.min_visible, image_id=index % len(self))
        if not self.train:  # where the tile is: validation merges an image's tiles as prediction does
            tile = index % len(self) - self._first_tile[image_index]
            target.update(source=image_index, tile=tile, offset=(int(window[0]), int(window[1])),
                          image_size=tuple(self.base.image_sizes[image_index]), tile_side=self.tile_size,
                          overlap=self.overlap)
            if tile == 0:  # the image's own boxes, once an image (a slide's thousands, not once a tile)
                boxes, labels = self.base.box_arrays(image_index)
                target.update(image_boxes=torch.as_tensor(boxes, dtype=torch.float32),
                              image_labels=torch.as_tensor(labels, dtype=torch.int64))
        return image, target

    def max_boxes_per_tile(self) -> int:
        """The most boxes a tile of the fixed grid keeps (0 without boxes)."""
        most = 0
        for image_index, window in self.windows:
            boxes, _ = self.base.box_arrays(image_index)
            most = max(most, len(boxes_in_window(boxes, window, self.min_visible)[0]))
        return most


def validation_windows(height: int, width: int, tile_size: int,
                       overlap: float = DEFAULT_OVERLAP) -> list[tuple[int, int, int, int]]:
    """The ``(x0, y0, x1, y1)`` windows tiled prediction cuts from an image of ``height x width`` (its
    :func:`~napari_faster_rcnn.core.prediction.tiles.tile_grid`, in the grid's order); one, the whole
    image, when it fits in a tile (or without ``tile_size``)."""
    if not tile_size or (height <= tile_size and width <= tile_size):
        return [(0, 0, int(width), int(height))]
    grid = tile_grid(int(height), int(width), int(tile_size), float(overlap))
    return [tuple(int(v) for v in rect) for rect in grid.rects]
