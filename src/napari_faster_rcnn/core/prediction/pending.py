"""Images on their way through the model: their inputs, whole or tile by tile, and their detections.

:func:`model_inputs` turns the entries of an :class:`.reading.ImageReader` into the model's inputs,
one tensor per whole image or per tile of a tiled image (each tile read and converted when its turn
comes), and keeps a :class:`PendingImage` per image in order, unreadable ones included. A
:class:`PendingImage` gathers the model's output for its image, merging a tiled image's detections
as its rows of tiles come in (:class:`.tile_merge.TileMerger`), until it is complete; then
:meth:`PendingImage.annotation` gives its annotation (:func:`detections_to_annotation` for one
output). The prediction loop is :func:`.run.iter_predictions`.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.prediction.reading import END, TileSource
from napari_faster_rcnn.core.prediction.tile_merge import TileMerger
from napari_faster_rcnn.core.prediction.tiles import TileGrid, Tiling

__all__ = ["PendingImage", "detections_to_annotation", "model_inputs"]


def detections_to_annotation(output: dict, names: np.ndarray, classes: list[str]) -> Annotation:
    """A model's output for one image as an annotation (labels as class names)."""
    boxes, scores, labels = _detection_arrays(output)
    return _annotation(boxes, scores, labels, names, classes)


def _detection_arrays(output: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (output["boxes"].float().cpu().numpy().astype(np.float64),
            output["scores"].float().cpu().numpy().astype(np.float64),
            output["labels"].cpu().numpy().astype(np.int64))


def _annotation(boxes, scores, labels, names: np.ndarray, classes) -> Annotation:
    known = labels < len(names)
    return Annotation(
        boxes=boxes,
        labels=[str(names[label]) if ok else str(label) for label, ok in zip(labels, known)],
        scores=scores,
        classes=list(classes),
    )


class PendingImage:
    """An image on its way through the model: its detections, merged tile by tile until all are in."""

    def __init__(self, index: int, size=None, grid: TileGrid | None = None, reason: str | None = None,
                 tiling: Tiling | None = None):
        self.index, self.size, self.grid, self.reason = index, size, grid, reason
        self.expected = 0 if reason is not None else (len(grid) if grid is not None else 1)
        self.received = 0
        self.output: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # a whole image's
        # a tiled image's detections are merged as its rows of tiles come in: memory follows a row, not the image
        self.merger = None if grid is None else TileMerger(grid, edge_tolerance=tiling.edge_tolerance,
                                                           match_threshold=tiling.match_threshold)

    @property
    def complete(self) -> bool:
        """Whether the model's output for every tile (or the whole image) is in."""
        return self.received == self.expected

    def add(self, output: dict) -> None:
        """The model's output for the next tile (or the whole image)."""
        if self.merger is None:
            self.output = _detection_arrays(output)
        else:
            self.merger.add(self.received, output["boxes"].float().cpu().numpy(),
                            output["scores"].float().cpu().numpy(), output["labels"].cpu().numpy())
        self.received += 1

    def annotation(self, names: np.ndarray, classes) -> Annotation:
        """The image's detections (merged across its tiles) as an annotation: ``names[k]`` is label ``k``'s."""
        if self.merger is None:
            return _annotation(*self.output, names, classes)
        merged = self.merger.result()
        self.merger = None
        return _annotation(merged.boxes, merged.scores, merged.labels, names, classes)


def model_inputs(next_entry, tiling: Tiling | None, pending: deque):
    """The model's inputs, ``(pending image, tensor)`` each: a whole image, or each tile of a tiled one.

    ``next_entry`` gives the entries of an :class:`.reading.ImageReader`. Appends every image (read
    or not) to ``pending`` when it is read, in order; raises an exception the reader met.
    """
    from napari_faster_rcnn.core.data.image_tensors import image_to_tensor

    while True:
        entry = next_entry()
        if entry is END:
            return
        if isinstance(entry, BaseException):
            raise entry
        index, data, reason = entry
        if data is None:
            pending.append(PendingImage(index, reason=reason))
        elif isinstance(data, TileSource):  # an image to tile: each tile read and converted when its turn comes
            grid = tiling.grid(data.size)
            image = PendingImage(index, size=data.size, grid=grid, tiling=tiling)
            pending.append(image)
            try:
                for x0, y0, x1, y1 in grid.rects.tolist():
                    yield image, image_to_tensor(data.tile(y0, y1, x0, x1))
            finally:
                data.close()
        else:
            image = PendingImage(index, size=(int(data.shape[1]), int(data.shape[2])))
            pending.append(image)
            yield image, data
