"""Anchor sizes and aspect ratios suggested from a dataset's boxes: k-means with an IoU distance.

YOLO's dimension clusters (YOLOv2, and the k-means that starts YOLOv5's
autoanchor) group the ``(width, height)`` of the training boxes by ``1 - IoU``
of the two shapes centred on each other, so that a big box is not "far" from a
slightly bigger one while a small box is from a slightly smaller one. The boxes
here are taken as the model sees them, on the resized image.

torchvision's anchors are not free shapes but, on each map, every pair of a
list of sizes and a list of aspect ratios, so the clusters are that product:
each box goes to the (size, ratio) pair it overlaps most, each size becomes the
geometric mean of ``sqrt(w * h)`` over its boxes (whatever their ratio) and each
ratio the geometric mean of ``h / w`` over its boxes, until no box moves.

Centred shapes ignore the grid: a 10 px wide box is poorly reached by a 10 px
anchor on a map whose anchors stand 32 px apart. So each k-means result is then
refined by the same steps with each box assigned to its best anchor *on the
grids* (:func:`.anchors.best_anchors`), and every candidate is scored by the
coverage it really gives. Deterministic for a seed; numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.model.anchors import FOREGROUND_IOU, REACHED_IOU, Coverage, best_anchors, dataset_boxes
from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.model.detector import feature_maps


class AnchorSuggestion(NamedTuple):
    """Suggested ``anchor_sizes`` and ``aspect_ratios`` (as a :class:`.ModelConfig` takes them)
    and the coverage they give on the dataset they were suggested for."""

    sizes: tuple[tuple[float, ...], ...]
    ratios: tuple[tuple[float, ...], ...]
    coverage: Coverage


def shapes_of(sizes: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """``(len(ratios) * len(sizes), 2)`` ``(width, height)`` of every (ratio, size) pair, ratio-major."""
    root = np.sqrt(ratios)[:, None]
    widths, heights = sizes[None, :] / root, sizes[None, :] * root
    return np.stack([widths.reshape(-1), heights.reshape(-1)], axis=1)


def centred_iou(shapes_a: np.ndarray, shapes_b: np.ndarray) -> np.ndarray:
    """``(A, B)`` IoU of ``(width, height)`` shapes placed on the same centre."""
    overlap = (np.minimum(shapes_a[:, None, 0], shapes_b[None, :, 0])
               * np.minimum(shapes_a[:, None, 1], shapes_b[None, :, 1]))
    area_a = shapes_a[:, 0] * shapes_a[:, 1]
    area_b = shapes_b[:, 0] * shapes_b[:, 1]
    return overlap / (area_a[:, None] + area_b[None, :] - overlap)


def _update(values: np.ndarray, logs: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    """Each cluster's value: the mean log of its members (an empty cluster keeps its value)."""
    values = values.copy()
    for k in range(len(values)):
        members = assignment == k
        if members.any():
            values[k] = logs[members].mean()
    return values


def cluster_shapes(wh: np.ndarray, n_sizes: int, n_ratios: int, seed: int = 0, restarts: int = 8,
                   iterations: int = 100) -> list[tuple[np.ndarray, np.ndarray]]:
    """Candidate ``(sizes, ratios)`` (sorted) for boxes of ``(width, height)`` ``wh``, one per start.

    The first start is spread over the quantiles of the boxes' sizes and ratios;
    the others at random quantiles from ``seed``. Equal results are given once,
    best mean centred IoU first.
    """
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    if len(wh) == 0:
        raise ValueError("there are no boxes to suggest anchors from")
    if n_sizes < 1 or n_ratios < 1:
        raise ValueError(f"need at least one size and one ratio, got {n_sizes} and {n_ratios}")
    log_size, log_ratio = 0.5 * np.log(wh[:, 0] * wh[:, 1]), np.log(wh[:, 1] / wh[:, 0])
    rng = np.random.default_rng(seed)
    found = {}
    for start in range(max(1, restarts)):
        if start == 0:
            size_quantiles = (np.arange(n_sizes) + 0.5) / n_sizes
            ratio_quantiles = (np.arange(n_ratios) + 0.5) / n_ratios
        else:
            size_quantiles, ratio_quantiles = np.sort(rng.random(n_sizes)), np.sort(rng.random(n_ratios))
        sizes, ratios = np.quantile(log_size, size_quantiles), np.quantile(log_ratio, ratio_quantiles)
        assignment = None
        for _ in range(iterations):
            best = centred_iou(wh, shapes_of(np.exp(sizes), np.exp(ratios))).argmax(axis=1)
            if assignment is not None and np.array_equal(best, assignment):
                break
            assignment = best
            ratio_of, size_of = np.divmod(best, n_sizes)
            sizes, ratios = _update(sizes, log_size, size_of), _update(ratios, log_ratio, ratio_of)
        sizes, ratios = np.sort(np.exp(sizes)), np.sort(np.exp(ratios))
        fitness = float(centred_iou(wh, shapes_of(sizes, ratios)).max(axis=1).mean())
        found.setdefault((tuple(np.round(sizes, 6)), tuple(np.round(ratios, 6))), (fitness, sizes, ratios))
    return [(sizes, ratios) for _, sizes, ratios in sorted(found.values(), key=lambda entry: -entry[0])]


class _Fit:
    """Candidates for one dataset and backbone: their config, coverage and score."""

    def __init__(self, config: ModelConfig, items):
        maps = feature_maps(config)
        strides = [feature_map.stride for feature_map in maps]
        self.config, self.maps = config, len(maps)
        # a pyramid of distinct strides takes its sizes by scale; maps of one stride share them all
        self.by_level = len(maps) > 1 and len(set(strides)) == len(strides)
        self.boxes, self.image, self.box, self.padded, self.images, self.degenerate = dataset_boxes(config, items)
        self.wh = np.stack([self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1]], axis=1)
        self.log_size, self.log_ratio = 0.5 * np.log(self.wh.prod(axis=1)), np.log(self.wh[:, 1] / self.wh[:, 0])

    def evaluate(self, sizes: np.ndarray, ratios: np.ndarray):
        """``(score, suggestion, (best map, best cell anchor) per box)`` of flat sizes (level by level)
        and ratios, rounded as a person would type them (whole pixels, two decimals). Values that
        rounding makes equal are given once: the same anchor twice only costs time."""
        sizes = [int(value) for value in np.maximum(1, np.rint(sizes))]
        ratio_tuple = tuple(sorted({float(max(0.01, round(float(value), 2))) for value in ratios}))
        if self.by_level:
            per_level = len(sizes) // self.maps
            size_tuples = tuple(tuple(sizes[k * per_level:(k + 1) * per_level]) for k in range(self.maps))
        else:
            size_tuples = (tuple(sorted(set(sizes))),) * self.maps
        candidate = self.config.replace(anchor_sizes=size_tuples, aspect_ratios=(ratio_tuple,) * self.maps)
        best_iou, best_anchor, best_map, best_shape = best_anchors(candidate, self.boxes, self.padded)
        coverage = Coverage(best_iou, self.image, self.box, self.boxes, best_anchor, best_map, self.images,
                            self.degenerate)
        score = (coverage.share(FOREGROUND_IOU), coverage.share(REACHED_IOU), float(best_iou.mean()))
        return score, AnchorSuggestion(*candidate.anchors(), coverage), (best_map, best_shape)

    def refine(self, sizes: np.ndarray, ratios: np.ndarray, iterations: int = 10):
        """k-means steps with each box assigned to its best anchor on the grids; the best result."""
        best = self.evaluate(sizes, ratios)
        for _ in range(iterations):
            suggestion, (best_map, best_shape) = best[1], best[2]
            levels = suggestion.sizes if self.by_level else suggestion.sizes[:1]
            sizes = np.log(np.array([size for level in levels for size in level], dtype=np.float64))
            ratios = np.log(np.array(suggestion.ratios[0], dtype=np.float64))
            per_map = len(suggestion.sizes[0])
            ratio_of, size_in_map = np.divmod(best_shape, per_map)  # torchvision's order: ratio-major
            size_of = best_map * per_map + size_in_map if self.by_level else size_in_map
            result = self.evaluate(np.exp(_update(sizes, self.log_size, size_of)),
                                   np.exp(_update(ratios, self.log_ratio, ratio_of)))
            if result[0] <= best[0]:
                break
            best = result
        return best


def suggest_anchors(config: ModelConfig, items: Iterable[tuple[tuple[int, int], Annotation]],
                    n_sizes: int | None = None, n_ratios: int = 3, *, seed: int = 0,
                    restarts: int = 8) -> AnchorSuggestion:
    """Anchor sizes and aspect ratios for a dataset's boxes, with the coverage they give.

    The best of the candidates (the most boxes at IoU 0.7, then at 0.5, then the
    highest mean best IoU) is returned.

    Parameters
    ----------
    config
        The backbone decides the shape: on a feature pyramid whose maps have
        different strides (ResNet FPN), the sizes go to the levels by scale, the
        smallest to the finest map, ``n_sizes / levels`` each (default one per
        level); on one map, or on maps of one stride (MobileNetV3's FPN), every
        map gets all sizes (default as many as ``config`` has on its first map).
        Every map gets the same aspect ratios.
    items
        ``((height, width), Annotation)`` per image.
    n_sizes, n_ratios
        How many sizes and aspect ratios; values that round to the same (boxes all
        square: every ratio 1) are given once, on a pyramid within a level only.
    seed, restarts
        The k-means starts: the first at the quantiles of the boxes, the others random from ``seed``.

    Raises
    ------
    ValueError
        Without boxes, or for ``n_sizes`` that the levels cannot share evenly.
    """
    fit = _Fit(config, items)
    if n_sizes is None:
        n_sizes = fit.maps if fit.by_level else len(config.anchors()[0][0])
    if fit.by_level and n_sizes % fit.maps:
        raise ValueError(f"{config.backbone} with FPN has {fit.maps} levels of different strides; n_sizes must be "
                         f"a multiple of {fit.maps} (sizes per level), got {n_sizes}")
    best = None
    for sizes, ratios in cluster_shapes(fit.wh, n_sizes, n_ratios, seed=seed, restarts=restarts):
        result = fit.refine(sizes, ratios)
        if best is None or result[0] > best[0]:
            best = result
    return best[1]
