"""Anchors as torchvision's RPN places them, and how well they reach the ground truth.

The RPN scores a fixed set of anchor boxes on the image that
``GeneralizedRCNNTransform`` makes: resized (the short side to ``min_size``
unless the long side would pass ``max_size``) and padded at the bottom and right
to a multiple of 32. On a feature map of ``h x w`` cells, torchvision's
``AnchorGenerator`` puts one box per (aspect ratio, size) pair at each
``(i * step_x, j * step_y)`` with ``step = padded size // grid``: at cell corners,
not cell centres, and on the pooled FPN level at a spacing that differs from its
stride when the padded size is not a multiple of 64. Its base anchors are
rounded to whole pixels. :class:`AnchorGrid` reproduces all of it (the tests
compare it with torchvision's own output).

Training (torchvision's ``Matcher``) labels an anchor positive when its IoU
with a ground-truth box reaches ``rpn_fg_iou_thresh`` (0.7), negative below
``rpn_bg_iou_thresh`` (0.3) and ignores it in between; low-quality matches are
allowed, so each box's best anchor is positive whatever its IoU. So what a
dataset asks of its anchors is read from each box's best IoU
(:func:`anchor_coverage`, README "Anchor boxes" for what the shares mean).

The best IoU per box is exact without a (boxes x anchors) matrix: for two
axis-aligned boxes of fixed sizes, the overlap along x depends only on the
distance between their centres along x and does not grow with it (the same
along y), and IoU grows with the overlap. So among the anchors of one shape on
one map, the best is the one at the grid point nearest the box centre in x and
in y. That leaves one IoU per box and per anchor shape (15 with torchvision's
defaults), whatever the image size: a dataset of 20,000 boxes takes
milliseconds. :func:`suggest_anchors` (k-means, :mod:`.anchor_suggestion`)
proposes sizes and ratios from the boxes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from torchvision.models.detection.anchor_utils import AnchorGenerator

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.model.detector import feature_maps, padded_image_size
from napari_faster_rcnn.core.statistics.measures import padded_sizes, transformed_sizes

__all__ = [
    "BACKGROUND_IOU",
    "FOREGROUND_IOU",
    "REACHED_IOU",
    "AnchorGrid",
    "Coverage",
    "anchor_boxes",
    "anchor_centres",
    "anchor_coverage",
    "anchor_grids",
    "anchors_at",
]

#: torchvision's RPN thresholds (``rpn_fg_iou_thresh``, ``rpn_bg_iou_thresh``) and the IoU
#: below which a box counts as unreached (the box head's foreground threshold too).
FOREGROUND_IOU = 0.7
REACHED_IOU = 0.5
BACKGROUND_IOU = 0.3


@dataclass(frozen=True, eq=False)
class AnchorGrid:
    """The anchors of one feature map on one padded image, as ``AnchorGenerator`` makes them.

    Attributes
    ----------
    name, stride
        The map's name and its backbone stride (see :class:`.model.FeatureMap`).
    rows, columns
        Its grid.
    step
        ``(vertical, horizontal)`` spacing of the anchor centres: padded size // grid.
    cell_anchors
        ``(A, 4)`` xyxy boxes around ``(0, 0)``, in torchvision's order (each ratio
        with every size in turn), rounded to whole pixels as torchvision rounds them.
    sizes, ratios
        ``(A,)`` the size and aspect ratio (height / width) of each cell anchor.
    """

    name: str
    stride: int
    rows: int
    columns: int
    step: tuple[int, int]
    cell_anchors: np.ndarray
    sizes: np.ndarray
    ratios: np.ndarray

    @property
    def locations(self) -> int:
        return self.rows * self.columns

    def centres(self) -> np.ndarray:
        """``(rows * columns, 2)`` ``(x, y)`` anchor centres, row by row as torchvision orders them."""
        y, x = np.meshgrid(np.arange(self.rows) * self.step[0], np.arange(self.columns) * self.step[1],
                           indexing="ij")
        return np.stack([x.reshape(-1), y.reshape(-1)], axis=1).astype(np.float64)

    def boxes(self) -> np.ndarray:
        """All ``(rows * columns * A, 4)`` anchors in torchvision's order (location, then cell anchor)."""
        centres = self.centres()
        shifts = np.concatenate([centres, centres], axis=1)
        return (shifts[:, None, :] + self.cell_anchors[None, :, :]).reshape(-1, 4)

    def nearest_cell(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """``(column, row)`` of the anchor centre nearest to each point ``(x, y)`` (a tie goes either way)."""
        column = np.clip(np.rint(np.asarray(x, dtype=np.float64) / self.step[1]), 0, self.columns - 1)
        row = np.clip(np.rint(np.asarray(y, dtype=np.float64) / self.step[0]), 0, self.rows - 1)
        return column.astype(np.int64), row.astype(np.int64)

    def at(self, x: float, y: float) -> np.ndarray:
        """The ``(A, 4)`` anchors of the cell whose centre is nearest to ``(x, y)``."""
        column, row = self.nearest_cell(x, y)
        shift = np.array([column * self.step[1], row * self.step[0]] * 2, dtype=np.float64)
        return self.cell_anchors + shift


@functools.lru_cache(maxsize=64)
def _cell_anchors(sizes: tuple, ratios: tuple) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """Per map: torchvision's base anchors and the size and ratio of each (read-only arrays)."""
    generator = AnchorGenerator(sizes, ratios)
    result = []
    for map_sizes, map_ratios, cell in zip(sizes, ratios, generator.cell_anchors, strict=True):
        base = cell.double().numpy()
        per_size = np.tile(np.asarray(map_sizes, dtype=np.float64), len(map_ratios))
        per_ratio = np.repeat(np.asarray(map_ratios, dtype=np.float64), len(map_sizes))
        for array in (base, per_size, per_ratio):
            array.setflags(write=False)
        result.append((base, per_size, per_ratio))
    return tuple(result)


def _grid(padded, stride):
    """Grid and anchor step of a map of ``stride`` on a padded side (ints or arrays)."""
    cells = -(-np.asarray(padded) // stride)  # every stride-2 step maps n to ceil(n / 2)
    return cells, np.asarray(padded) // cells


def grids_for_padded(config: ModelConfig, padded: tuple[int, int]) -> list[AnchorGrid]:
    """The :class:`AnchorGrid` of every feature map for a padded image of ``(height, width)``."""
    sizes, ratios = config.anchors()
    grids = []
    for feature_map, (base, per_size, per_ratio) in zip(feature_maps(config), _cell_anchors(sizes, ratios),
                                                        strict=True):
        rows, step_y = _grid(padded[0], feature_map.stride)
        columns, step_x = _grid(padded[1], feature_map.stride)
        grids.append(AnchorGrid(feature_map.name, feature_map.stride, int(rows), int(columns),
                                (int(step_y), int(step_x)), base, per_size, per_ratio))
    return grids


def anchor_grids(config: ModelConfig, image_size: tuple[int, int]) -> list[AnchorGrid]:
    """The anchor grid of each feature map for an image of ``(height, width)`` (before the resize)."""
    return grids_for_padded(config, padded_image_size(config, image_size))


def anchor_boxes(config: ModelConfig, image_size: tuple[int, int]) -> list[np.ndarray]:
    """Per feature map, every anchor as torchvision's ``AnchorGenerator`` gives it, ``(N, 4)`` xyxy
    on the padded image; their concatenation is the generator's output for this image."""
    return [grid.boxes() for grid in anchor_grids(config, image_size)]


def anchor_centres(config: ModelConfig, image_size: tuple[int, int]) -> list[np.ndarray]:
    """Per feature map, the ``(rows * columns, 2)`` ``(x, y)`` anchor centres on the padded image."""
    return [grid.centres() for grid in anchor_grids(config, image_size)]


def anchors_at(config: ModelConfig, image_size: tuple[int, int], point: tuple[float, float]) -> list[np.ndarray]:
    """Per feature map, the ``(A, 4)`` anchors of the cell nearest ``point``.

    ``point`` is ``(x, y)`` on the padded image (the resized image's pixels);
    ``image_size`` the image's ``(height, width)`` before the resize.
    """
    x, y = point
    return [grid.at(x, y) for grid in anchor_grids(config, image_size)]


# --- coverage of a dataset --------------------------------------------------------------


@dataclass(eq=False)
class Coverage:
    """How well the anchors reach a dataset's boxes: per box, its best anchor.

    Boxes are those with an area once cut at their image's border (training
    drops the others; they are counted in ``degenerate``), on the resized image.

    Attributes
    ----------
    best_iou : (B,) float64
        The highest IoU of any anchor of its image with the box.
    image, box : (B,) int64
        The box's image (position in the items) and its index in that image's annotation.
    boxes : (B, 4) float64
        The box on its resized image.
    best_anchor : (B, 4) float64
        Its best anchor (the first found of equals).
    best_map : (B,) int64
        The feature map (position in :func:`anchor_grids`) of that anchor.
    images, degenerate
        Images in the dataset; boxes left out for having no area.
    """

    best_iou: np.ndarray
    image: np.ndarray
    box: np.ndarray
    boxes: np.ndarray
    best_anchor: np.ndarray
    best_map: np.ndarray
    images: int
    degenerate: int = 0

    def __len__(self) -> int:
        return len(self.best_iou)

    def share(self, threshold: float) -> float:
        """The share of boxes whose best anchor reaches IoU ``threshold`` (NaN without boxes)."""
        return float((self.best_iou >= threshold).mean()) if len(self) else math.nan

    def unreached(self, threshold: float = REACHED_IOU) -> list[tuple[int, int, float]]:
        """``(image, box, best IoU)`` of every box whose best anchor stays below ``threshold``, worst first."""
        below = np.flatnonzero(self.best_iou < threshold)
        below = below[np.argsort(self.best_iou[below], kind="stable")]
        return [(int(self.image[i]), int(self.box[i]), float(self.best_iou[i])) for i in below]

    def in_image(self, image: int) -> np.ndarray:
        """Positions (into the per-box arrays) of one image's boxes."""
        return np.flatnonzero(self.image == image)

    def summary(self) -> dict:
        """A JSON-ready summary: counts and the shares at 0.7 and 0.5, and below 0.3."""
        def rounded(value):
            return None if value != value else round(value, 4)

        return {
            "images": self.images,
            "boxes": len(self),
            "iou_0.7": rounded(self.share(FOREGROUND_IOU)),
            "iou_0.5": rounded(self.share(REACHED_IOU)),
            "below_0.3": rounded(1.0 - self.share(BACKGROUND_IOU)) if len(self) else None,
            "unreached": int((self.best_iou < REACHED_IOU).sum()),
            "degenerate": self.degenerate,
            "mean_iou": rounded(float(self.best_iou.mean())) if len(self) else None,
        }


def dataset_boxes(config: ModelConfig, items: Iterable[tuple[tuple[int, int], Annotation]]):
    """Every box of ``items`` on its resized image, with its image's padded size.

    Returns
    -------
    boxes (B, 4), image (B,), box (B,), padded (B, 2), images, degenerate
    """
    items = list(items)
    sizes = np.array([(int(size[0]), int(size[1])) for size, _ in items], dtype=np.int64).reshape(-1, 2)
    if len(sizes) and (sizes <= 0).any():
        bad = int(np.flatnonzero((sizes <= 0).any(axis=1))[0])
        raise ValueError(f"image {bad} has the size {tuple(sizes[bad])}; heights and widths must be positive")
    counts = np.array([len(annotation) for _, annotation in items], dtype=np.int64)
    image = np.repeat(np.arange(len(items), dtype=np.int64), counts)
    box = np.concatenate([np.arange(count) for count in counts]).astype(np.int64) if len(items) else image
    boxes = np.concatenate([a.boxes for _, a in items]) if counts.sum() else np.zeros((0, 4))
    new_height, new_width, _ = transformed_sizes(sizes[:, 0], sizes[:, 1], config.min_size, config.max_size)
    padded = np.stack(padded_sizes(new_height, new_width), axis=1).reshape(-1, 2)
    height, width = sizes[image, 0].astype(np.float64), sizes[image, 1].astype(np.float64)
    boxes = np.clip(boxes, 0.0, np.stack([width, height, width, height], axis=1))
    scale_x, scale_y = new_width[image] / width, new_height[image] / height
    boxes = boxes * np.stack([scale_x, scale_y, scale_x, scale_y], axis=1)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep], image[keep], box[keep], padded[image[keep]], len(items), int((~keep).sum())


def best_anchors(config: ModelConfig, boxes: np.ndarray, padded: np.ndarray):
    """Each box's best anchor on its padded image: ``(best IoU, anchor box, map, cell anchor)``
    (the map's position in :func:`anchor_grids`, the anchor's in its ``cell_anchors``).

    ``boxes`` ``(B, 4)`` on the resized images, ``padded`` ``(B, 2)`` each box's
    padded image size. One pass per anchor shape over all boxes (see the module's
    docstring for why the nearest grid point is the best of each shape).
    """
    count = len(boxes)
    best_iou = np.full(count, -1.0)
    best_anchor = np.zeros((count, 4))
    best_map = np.zeros(count, dtype=np.int64)
    best_shape = np.zeros(count, dtype=np.int64)
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    sizes, ratios = config.anchors()
    for position, (feature_map, (base, _, _)) in enumerate(zip(feature_maps(config), _cell_anchors(sizes, ratios),
                                                               strict=True)):
        rows, step_y = _grid(padded[:, 0], feature_map.stride)
        columns, step_x = _grid(padded[:, 1], feature_map.stride)
        for shape, anchor in enumerate(base):
            offset_x, offset_y = (anchor[0] + anchor[2]) / 2, (anchor[1] + anchor[3]) / 2
            column = np.clip(np.rint((centre_x - offset_x) / step_x), 0, columns - 1)
            row = np.clip(np.rint((centre_y - offset_y) / step_y), 0, rows - 1)
            shift_x, shift_y = column * step_x, row * step_y
            candidate = np.stack([shift_x + anchor[0], shift_y + anchor[1], shift_x + anchor[2],
                                  shift_y + anchor[3]], axis=1)
            width = np.minimum(boxes[:, 2], candidate[:, 2]) - np.maximum(boxes[:, 0], candidate[:, 0])
            height = np.minimum(boxes[:, 3], candidate[:, 3]) - np.maximum(boxes[:, 1], candidate[:, 1])
            overlap = np.clip(width, 0, None) * np.clip(height, 0, None)
            union = area + (anchor[2] - anchor[0]) * (anchor[3] - anchor[1]) - overlap
            iou = np.divide(overlap, union, out=np.zeros(count), where=union > 0)
            better = iou > best_iou
            best_iou[better], best_anchor[better] = iou[better], candidate[better]
            best_map[better], best_shape[better] = position, shape
    return np.clip(best_iou, 0.0, None), best_anchor, best_map, best_shape


def anchor_coverage(config: ModelConfig, items: Iterable[tuple[tuple[int, int], Annotation]]) -> Coverage:
    """How well ``config``'s anchors reach the boxes of a dataset.

    Parameters
    ----------
    config
        The backbone (its feature maps), anchors and resize.
    items
        ``((height, width), Annotation)`` per image; boxes in the image's pixels.

    Returns
    -------
    Coverage
        Per box its best IoU over every anchor of its image (as torchvision
        places them on that image, padded alone), with the shares at 0.7, 0.5
        and 0.3 and the boxes below 0.5. A training batch pads its images to the
        largest one: the maps then have more cells at the bottom and right, at
        the same places except on the pooled FPN level, whose step follows the
        padded size.
    """
    boxes, image, box, padded, images, degenerate = dataset_boxes(config, items)
    best_iou, best_anchor, best_map, _ = best_anchors(config, boxes, padded)
    return Coverage(best_iou, image, box, boxes, best_anchor, best_map, images, degenerate)
