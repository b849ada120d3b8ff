"""Fit a model's input size and anchors to a dataset's boxes (``--model.auto true``).

A preset fixes ``min_size``/``max_size`` and anchors for objects of some size
(the ``cpu`` preset: 16-48 px anchors on 128 px images). Data of another scale
(heads of 100 px in photos of 600 px, shrunk to 16 x 20 px at 128 px) leaves the
boxes below the anchors and the feature map's resolution, and the model learns
little, with nothing telling the user why. :func:`auto_size` chooses instead:

1. **The target size** of the median box on the resized image: the geometric
   middle of the config's anchor sizes (what its backbone was set up for), but at
   least ``roi_output_size`` cells of the finest feature map (7 x 8 = 56 px on the
   ``cpu`` preset's stride 8): the box head pools each proposal to a 7 x 7 grid,
   and a box of fewer cells than that is pooled from blurred, repeated values.
2. **The image size**: ``max_size`` keeps the data's aspect ratio (the 90th
   percentile of long side / short side), and ``min_size`` is the multiple of 32
   whose resize (torchvision's rule, image by image: short side to ``min_size``
   unless the long side would pass ``max_size``) puts the median box nearest to
   the target, no larger than ``max_side`` on the long side.
3. **The anchors**: the Anchor boxes widget's suggestion
   (:func:`.anchor_suggestion.suggest_anchors`, k-means of the resized boxes),
   with as many sizes and ratios as the config has.

:func:`small_box_warning` says when most resized boxes fall below the smallest
anchor, whatever chose the sizes. numpy only (and the anchor code).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.model.anchor_suggestion import suggest_anchors
from napari_faster_rcnn.core.model.anchors import REACHED_IOU, anchor_coverage, dataset_boxes
from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.model.detector import feature_maps

__all__ = ["MAX_SIDE", "AutoSize", "auto_size", "box_sizes", "small_box_warning"]

#: The largest long side auto sizing chooses (memory grows with its square).
MAX_SIDE = 1536
#: The smallest min_size it chooses.
MIN_SIDE = 64
SIZE_STEP = 32
#: The share of boxes below the smallest anchor from which :func:`small_box_warning` warns.
SMALL_BOX_SHARE = 0.5
#: Without FPN, :func:`small_box_warning` also warns when the median box spans fewer cells than
#: this of the feature map (the ``cpu`` preset's synthetic shapes, which it learns well, span 3.4).
COARSE_CELLS = 3


@dataclass(frozen=True)
class AutoSize:
    """What :func:`auto_size` chose and why.

    Attributes
    ----------
    config
        The given config with ``min_size``, ``max_size``, ``anchor_sizes`` and ``aspect_ratios`` set.
    images, boxes
        Images and boxes (with an area) it was fitted to.
    median_box
        ``(width, height)`` of the median box in the images' own pixels.
    target
        The size (square root of the area) it aimed the median resized box at.
    median_resized
        ``(width, height)`` of the median box once resized with the chosen sizes.
    before, after
        Share of boxes an anchor reaches at IoU 0.5 with the given config and with the chosen one.
    notes
        Why a choice differs from the rule (a size limit reached).
    """

    config: ModelConfig
    images: int
    boxes: int
    median_box: tuple[float, float]
    target: float
    median_resized: tuple[float, float]
    before: float
    after: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """The choice as plain values (JSON, logs)."""
        sizes, ratios = self.config.anchors()
        return {
            "min_size": self.config.min_size, "max_size": self.config.max_size,
            "anchor_sizes": [list(level) for level in sizes], "aspect_ratios": [list(level) for level in ratios],
            "images": self.images, "boxes": self.boxes,
            "median_box": [round(value, 1) for value in self.median_box], "target": round(self.target, 1),
            "median_resized": [round(value, 1) for value in self.median_resized],
            "reached_before": round(self.before, 4), "reached_after": round(self.after, 4),
            "notes": list(self.notes),
        }

    def describe(self) -> str:
        """A few lines for a person: the sizes chosen and why."""
        sizes, ratios = self.config.anchors()

        def pixels(pair):
            return f"{pair[0]:.0f} x {pair[1]:.0f} px"

        def anchors(values):
            levels = values[:1] if len(set(values)) == 1 else values  # the same on every map: once
            return "; ".join(", ".join(f"{value:g}" for value in level) for level in levels)

        lines = [
            f"auto sizing: min_size {self.config.min_size}, max_size {self.config.max_size} "
            f"(median box {pixels(self.median_box)} in {self.images} images, {pixels(self.median_resized)} "
            f"once resized; aimed at {self.target:.0f} px)",
            f"  anchor sizes {anchors(sizes)}, aspect ratios {anchors(ratios)} (suggested from "
            f"{self.boxes} boxes); boxes an anchor reaches at IoU 0.5: {self.before:.0%} before, {self.after:.0%} now",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def box_sizes(config: ModelConfig, items: Iterable[tuple[tuple[int, int], Annotation]]) -> np.ndarray:
    """``(B, 2)`` ``(width, height)`` of every box on its image resized as ``config`` resizes it
    (cut at the image's border; boxes without area left out, as training drops them)."""
    boxes = dataset_boxes(config, items)[0]
    return np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1).reshape(-1, 2)


def _median_size(wh: np.ndarray) -> float:
    return float(np.median(np.sqrt(wh[:, 0] * wh[:, 1])))


def _median_shape(wh: np.ndarray) -> tuple[float, float]:
    return float(np.median(wh[:, 0])), float(np.median(wh[:, 1]))


def roi_grid_size(config: ModelConfig) -> float:
    """``roi_output_size`` cells of the finest feature map, in pixels: below it, the box head pools a
    box from fewer cells than its grid has (7 x 8 = 56 px on the ``cpu`` preset)."""
    return float(config.roi_output_size * min(feature_map.stride for feature_map in feature_maps(config)))


def target_size(config: ModelConfig) -> float:
    """The size (square root of the area) the median resized box is aimed at: the geometric middle
    of the config's anchor sizes; on one feature map (no FPN) at least :func:`roi_grid_size`. With
    an FPN, the box head pools each box from the level that fits its size, so the anchors say it."""
    sizes = [size for level in config.anchors()[0] for size in level]
    middle = math.sqrt(min(sizes) * max(sizes))
    return middle if config.fpn else max(middle, roi_grid_size(config))


def auto_size(config: ModelConfig, items: Iterable[tuple[tuple[int, int], Annotation]], *,
              max_side: int = MAX_SIDE, seed: int = 0) -> AutoSize:
    """``config`` with ``min_size``, ``max_size`` and anchors fitted to a dataset (see the module).

    Parameters
    ----------
    config
        The backbone, feature maps and box head; its anchors give the target size and the number
        of anchor sizes and ratios suggested.
    items
        ``((height, width), Annotation)`` per training image, boxes in the image's pixels.
    max_side
        The largest ``max_size`` chosen.
    seed
        The anchor suggestion's k-means seed.

    Raises
    ------
    ValueError
        When no image has a box to fit to.
    """
    items = list(items)
    own = np.concatenate([_own_sizes(size, annotation) for size, annotation in items]) if items \
        else np.zeros((0, 2))
    if not len(own):
        raise ValueError("auto sizing needs boxes: the training images have none")
    shapes = np.array([size for size, _ in items], dtype=np.float64)
    elongation = float(np.quantile(shapes.max(axis=1) / shapes.min(axis=1), 0.9))
    target = target_size(config)
    notes = []
    best = None
    for min_size in range(MIN_SIDE, max_side + 1, SIZE_STEP):
        max_size = int(math.ceil(min_size * elongation / SIZE_STEP) * SIZE_STEP)
        if max_size > max_side:
            max_size = max(min_size, max_side)
        candidate = config.replace(min_size=min_size, max_size=max_size, anchor_sizes=None, aspect_ratios=None)
        resized = box_sizes(candidate, items)
        distance = abs(math.log(_median_size(resized) / target))
        if best is None or distance < best[0] - 1e-9:
            best = (distance, min_size, max_size, resized)
    _, min_size, max_size, resized = best
    median_resized = _median_size(resized)
    if median_resized < target / 1.25 and max_size >= max_side:
        notes.append(f"the boxes are small for these images: at the largest size chosen ({max_side} px on the long "
                     f"side) the median box is {median_resized:.0f} px rather than {target:.0f}; crop the images "
                     "into tiles, or allow larger images")
    sized = config.replace(min_size=min_size, max_size=max_size)
    suggestion = suggest_anchors(sized, items, n_ratios=len(config.anchors()[1][0]), seed=seed)
    chosen = sized.replace(anchor_sizes=suggestion.sizes, aspect_ratios=suggestion.ratios)
    before = anchor_coverage(config, items).share(REACHED_IOU)
    return AutoSize(chosen, len(items), len(resized), _median_shape(own), target, _median_shape(resized),
                    before, suggestion.coverage.share(REACHED_IOU), tuple(notes))


def _own_sizes(size: tuple[int, int], annotation: Annotation) -> np.ndarray:
    """``(width, height)`` of an image's boxes in its own pixels, cut at its border, with an area."""
    height, width = size
    boxes = np.clip(np.asarray(annotation.boxes, dtype=np.float64).reshape(-1, 4), 0.0,
                    [width, height, width, height])
    wh = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    return wh[(wh > 0).all(axis=1)]


def small_box_warning(config: ModelConfig, items: Iterable[tuple[tuple[int, int], Annotation]],
                      share: float = SMALL_BOX_SHARE, fitted: bool = False) -> str | None:
    """A warning when more than ``share`` of the resized boxes are smaller than the smallest anchor
    (size: square root of the area), or, without FPN, when the median box spans fewer than
    :data:`COARSE_CELLS` cells of the feature map; else None. ``fitted``: the sizes and anchors were
    fitted to the data already (``auto``), so the advice is tiles rather than fitting.

    Such boxes are reached by no anchor at the RPN's IoU 0.7 and sit on few cells of the feature
    map: the detector misses most of them, and training says nothing about why.
    """
    wh = box_sizes(config, items)
    if not len(wh):
        return None
    smallest = min(size for level in config.anchors()[0] for size in level)
    size = np.sqrt(wh[:, 0] * wh[:, 1])
    below = float((size < smallest).mean())
    stride = min(feature_map.stride for feature_map in feature_maps(config))
    coarse = not config.fpn and float(np.median(size)) < COARSE_CELLS * stride
    if below <= share and not coarse:
        return None
    width, height = _median_shape(wh)
    resized = (f"once the images are resized (min_size {config.min_size}, max_size {config.max_size}: median box "
               f"{width:.0f} x {height:.0f} px)")
    if below > share:
        problem = (f"{below:.0%} of the {len(wh)} training boxes are smaller than the smallest anchor "
                   f"({smallest:g} px) {resized}")
    else:
        problem = (f"the training boxes are small for this model {resized}: the median box spans "
                   f"{np.median(size) / stride:.1f} cells of its stride-{stride} feature map, and its box head "
                   f"pools {config.roi_output_size} x {config.roi_output_size}")
    if fitted:  # the images are as large as auto sizing goes: only smaller inputs can be enlarged more
        return (f"{problem}; the detector will miss most of them, although the sizes are fitted to the data "
                "already (as large as they go). Train on tiles (--data.tile_size, or 'tiles' in the Train "
                "detector): each tile is enlarged more than a whole image can be")
    return (f"{problem}; the detector will miss most of them. Fit the sizes to the data (--model.auto true, or "
            "'fit to the data' under image size in the Train detector), or raise min_size and max_size "
            "and choose anchors in the Anchor boxes widget")
