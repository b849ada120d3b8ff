"""The measures of doubt of one image, numpy only: how unsure a detector is of an image, each from 0
(none) to 1. :mod:`~napari_faster_rcnn.core.prediction.measuring` gets their inputs from the model
(the image and its horizontal mirror image in one batch) and :mod:`~napari_faster_rcnn.core.prediction.usefulness`
orders the images by them.

uncertainty
    detections whose score lies near the score threshold ``t``: each counts
    ``c = max(0, 1 - |score - t| / band)`` (``band`` = 60% of the distance from
    ``t`` to 0 or 1, whichever is nearer), and the image gets ``1 - prod(1 - c)``
    (the more doubtful boxes, the higher; a box far above or below ``t`` adds nothing).
confusion
    class confusion from the box head's class probabilities of the detected boxes (see
    :mod:`~napari_faster_rcnn.core.prediction.measuring` for how they are had): each box's
    foreground probabilities give ``1 - (p_first - p_second)``; the image gets their mean weighted by
    the boxes' scores (0 for a one-class model, or no box).
disagreement
    between the image and its mirror image: the mirror's boxes are flipped back
    and matched greedily (same class, highest IoU first, IoU >= 0.1) to the
    image's, among the boxes of either scoring at least ``t / 2``; a matched pair
    counts ``1 - IoU`` and an unmatched box 1, each weighted by its score.
low_confidence
    ``1 -`` the mean foreground probability (1 - background) the box head gives the three RPN
    proposals it is surest of (:data:`~napari_faster_rcnn.core.prediction.measuring.SURE_PROPOSALS`),
    averaged over the image and its mirror image: an image where the model is sure of no object at
    all, as on images unlike the training images (an image truly without objects ranks high too).
    It is computed with the model, in :mod:`~napari_faster_rcnn.core.prediction.measuring`.

novelty
    only when the images labeled already are given (``labeled``; only their pooled backbone features
    are computed, :func:`~napari_faster_rcnn.core.prediction.measuring.iter_image_features`): the
    distance of the image's pooled backbone features to the nearest labeled image's (Euclidean, in
    units of the root-mean-square distance of all the images to their mean; 0 for a copy of a labeled
    image), so that images unlike everything labeled count (the core-set idea, Sener & Savarese 2018).
    Without labeled images it is 0 and does not count. (Cosine similarity, tried first, put images of
    unseen styles *nearer* the labeled ones than new images of the labeled style: it ignores how far
    from the mean an image lies.) Unlike the others it is relative to the labeled images
    (:func:`novelty_of`, over all the images at once).

:class:`ImageMeasures` holds one image's measures and pooled features, as the model gives them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_faster_rcnn.core.data.boxes import box_iou

__all__ = ["MATCH_IOU", "ImageMeasures", "confusion_of", "disagreement_of", "novelty_of", "uncertainty_of"]

#: Boxes of the image and its mirror image overlapping less than this are not a pair.
MATCH_IOU = 0.1


@dataclass
class ImageMeasures:
    """What the model makes of one image, before the ranking (see the module docstring)."""

    index: int
    image: str
    uncertainty: float
    confusion: float
    disagreement: float
    detections: int  # scoring at least the threshold
    features: np.ndarray  # pooled backbone features (1-D)
    low_confidence: float = 0.0


def uncertainty_of(scores: np.ndarray, threshold: float) -> float:
    """``1 - prod(1 - c)`` over the detections, ``c`` their nearness to ``threshold`` (module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    band = 0.6 * min(threshold, 1.0 - threshold)
    if band <= 0 or not len(scores):
        return 0.0
    near = np.clip(1.0 - np.abs(scores - threshold) / band, 0.0, 1.0)
    return float(1.0 - np.prod(1.0 - near))


def confusion_of(probabilities: np.ndarray, scores: np.ndarray) -> float:
    """Score-weighted mean of ``1 - (first - second)`` of each box's foreground class probabilities.

    ``probabilities`` is ``(boxes, classes)`` with the background in column 0.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 3 or not len(scores) or scores.sum() <= 0:
        return 0.0
    foreground = probabilities[:, 1:]
    foreground = foreground / np.maximum(foreground.sum(axis=1, keepdims=True), 1e-12)
    top = np.sort(foreground, axis=1)[:, ::-1]
    confusion = 1.0 - (top[:, 0] - top[:, 1])
    return float(np.sum(scores * confusion) / scores.sum())


def disagreement_of(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, mirror_boxes: np.ndarray,
                    mirror_scores: np.ndarray, mirror_labels: np.ndarray) -> float:
    """Score-weighted ``1 - IoU`` of matched pairs and 1 of unmatched boxes (mirror boxes flipped back).

    0 when neither view has a box; pairs are matched greedily, highest IoU first, same label only.
    """
    boxes, mirror_boxes = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(mirror_boxes, np.float64).reshape(-1, 4)
    scores, mirror_scores = np.asarray(scores, np.float64), np.asarray(mirror_scores, np.float64)
    total = scores.sum() + mirror_scores.sum()
    if total <= 0:
        return 0.0
    iou = box_iou(boxes, mirror_boxes) if len(boxes) and len(mirror_boxes) else np.zeros((len(boxes), len(mirror_boxes)))
    iou = np.where(np.asarray(labels)[:, None] == np.asarray(mirror_labels)[None, :], iou, 0.0)
    free_a, free_b = np.ones(len(boxes), bool), np.ones(len(mirror_boxes), bool)
    cost = 0.0
    weight = 0.0
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        a, b = divmod(int(flat), iou.shape[1])
        if iou[a, b] < MATCH_IOU:
            break
        if free_a[a] and free_b[b]:
            free_a[a] = free_b[b] = False
            pair = max(scores[a], mirror_scores[b])
            cost += pair * (1.0 - iou[a, b])
            weight += pair
    unmatched = scores[free_a].sum() + mirror_scores[free_b].sum()
    return float((cost + unmatched) / (weight + unmatched)) if weight + unmatched > 0 else 0.0


def novelty_of(features: np.ndarray, labeled_features: np.ndarray) -> np.ndarray:
    """Each image's distance to the nearest labeled image (Euclidean, on the pooled features), in units of
    the root-mean-square distance of all the images (ranked and labeled) to their mean; 0 for a copy of a
    labeled image, 0 for every image when none is labeled."""
    if not len(labeled_features) or not len(features):
        return np.zeros(len(features))
    features = np.asarray(features, np.float64).reshape(len(features), -1)
    labeled = np.asarray(labeled_features, np.float64).reshape(len(labeled_features), -1)
    both = np.concatenate([features, labeled])
    spread = np.sqrt(np.mean(np.sum((both - both.mean(axis=0)) ** 2, axis=1)))
    squared = (np.sum(features ** 2, axis=1)[:, None] + np.sum(labeled ** 2, axis=1)[None, :]
               - 2.0 * features @ labeled.T)
    nearest = np.sqrt(np.maximum(squared.min(axis=1), 0.0))
    return nearest / spread if spread > 1e-12 else np.zeros(len(features))
