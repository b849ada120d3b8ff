"""Tiles of a training dataset's images, as training on large images takes them.

A :class:`TileDataset` wraps a :class:`~.dataset.DetectionDataset` (which reads,
caches, normalizes and augments the pixels, see
:meth:`~.dataset.DetectionDataset.window_item`) and chooses the windows: a random
tile per access for training, the fixed grid of every image for validation. The
windows and the rule for boxes cut by a tile border are in :mod:`.tiling`.
"""

from __future__ import annotations

import torch

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
    as the validation grid has tiles, each image drawn as often as its grid has tiles. ``train`` False:
    the fixed grid of every image, in order. Boxes cut by a tile border are kept, clipped, when at
    least ``min_visible`` of their area is inside. Images no larger than a tile are used whole.
    Augmentation (the base dataset's ``transform``) runs on the tile.
    """

    def __init__(self, base: DetectionDataset, tile_size: int, train: bool,
                 min_visible: float = MIN_VISIBLE, object_probability: float = OBJECT_PROBABILITY,
                 generator: torch.Generator | None = None):
        if not 0.0 <= object_probability <= 1.0:
            raise ValueError(f"object_probability must be in [0, 1], got {object_probability!r}")
        self.base = base
        self.tile_size = int(tile_size)
        self.train = bool(train)
        self.min_visible = float(min_visible)
        self.object_probability = float(object_probability)
        self.generator = generator
        self.windows: list[tuple[int, tuple[int, int, int, int]]] = [
            (index, window)
            for index, (height, width) in enumerate(base.image_sizes)
            for window in grid_windows(height, width, self.tile_size)
        ]

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
        return self.base.window_item(image_index, window, self.min_visible, image_id=index % len(self))

    def max_boxes_per_tile(self) -> int:
        """The most boxes a tile of the fixed grid keeps (0 without boxes)."""
        most = 0
        for image_index, window in self.windows:
            boxes, _ = self.base.box_arrays(image_index)
            most = max(most, len(boxes_in_window(boxes, window, self.min_visible)[0]))
        return most
