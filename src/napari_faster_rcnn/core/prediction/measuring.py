"""Measuring images with the model, for the ranking: the inputs of the measures of doubt
(:mod:`~napari_faster_rcnn.core.prediction.doubt`, which defines them) and the pooled backbone
features that ``novelty`` and the diversity term use.

:func:`iter_image_measures` runs a trained detector over the images, each image and its horizontal
mirror image in one batch, ``batch_size`` images at a time (each batch read when its turn comes),
detections down to :data:`SCORE_FLOOR` kept, and gives an
:class:`~napari_faster_rcnn.core.prediction.doubt.ImageMeasures` per image:

- ``uncertainty`` from the image's detection scores, ``disagreement`` from its and its mirror
  image's boxes (flipped back) of score at least ``t / 2``;
- ``confusion`` from the box head's class probabilities, which torchvision's
  ``RoIHeads.postprocess_detections`` drops: the detected boxes go through the model's own RoI
  pooling, box head and box predictor once more (its parts, called as the model calls them);
- ``low_confidence``: ``1 -`` the mean foreground probability (1 - background) the box head gives
  the :data:`SURE_PROPOSALS` RPN proposals it is surest of, averaged over the image and its mirror image;
- ``features``: the backbone's feature maps averaged over the image (its padding left out), levels joined.

:func:`iter_image_features` gives the pooled backbone features alone (transform and backbone, no
detection), for the labeled images. Both yield :class:`RankingProgress` and put the model's
settings and mode back when done.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.prediction.doubt import ImageMeasures, confusion_of, disagreement_of, uncertainty_of
from napari_faster_rcnn.core.prediction.settings import DetectionSettings, resolve_device, starting_thresholds

__all__ = ["SCORE_FLOOR", "SURE_PROPOSALS", "RankingProgress", "iter_image_features", "iter_image_measures"]

#: Detections scoring below this are left out of every measure (torchvision's mAP floor).
SCORE_FLOOR = 0.05
#: low_confidence looks at the mean foreground probability of so many proposals, the surest.
SURE_PROPOSALS = 3


@dataclass
class RankingProgress:
    """Images measured so far, of ``total``; ``error`` names an image that could not be read."""

    done: int
    total: int
    error: str | None = None


def _forward_with_probabilities(model, tensors):
    """The model's detections of ``tensors`` with each box's class probabilities and pooled features.

    Runs the detector's parts as ``GeneralizedRCNN.forward`` does (transform, backbone, RPN, box
    heads, back to the input's size), then the detected boxes once more through the box head
    (RoI pooling, head, predictor) for their class probabilities.
    """
    import torch

    original_sizes = [tuple(t.shape[-2:]) for t in tensors]
    batch, _ = model.transform(tensors)
    features = model.backbone(batch.tensors)
    if isinstance(features, torch.Tensor):
        features = {"0": features}
    proposals, _ = model.rpn(batch, features)
    detections, _ = model.roi_heads(features, proposals, batch.image_sizes)
    heads = model.roi_heads
    pooled = heads.box_roi_pool(features, [d["boxes"] for d in detections], batch.image_sizes)
    logits, _ = heads.box_predictor(heads.box_head(pooled))
    probabilities = torch.softmax(logits, dim=-1).split([len(d["boxes"]) for d in detections])
    proposal_logits, _ = heads.box_predictor(heads.box_head(heads.box_roi_pool(features, proposals, batch.image_sizes)))
    foreground = 1.0 - torch.softmax(proposal_logits, dim=-1)[:, 0]
    most_sure = [float(part.topk(min(SURE_PROPOSALS, len(part))).values.mean()) if len(part) else 0.0
                 for part in foreground.split([len(p) for p in proposals])]
    detections = model.transform.postprocess(detections, batch.image_sizes, original_sizes)
    vectors = _pooled(features, batch)
    return detections, [p.float().cpu().numpy() for p in probabilities], vectors, most_sure


def _pooled(features, batch) -> list[np.ndarray]:
    """Each image's backbone feature maps averaged over the image (its padding left out), levels joined."""
    import torch

    padded_height = batch.tensors.shape[-2]
    vectors = []
    for index, (height, width) in enumerate(batch.image_sizes):
        parts = []
        for fmap in features.values():
            stride = max(1, round(padded_height / fmap.shape[-2]))
            rows, cols = max(1, -(-height // stride)), max(1, -(-width // stride))
            parts.append(fmap[index, :, :rows, :cols].float().mean(dim=(1, 2)))
        vectors.append(torch.cat(parts).cpu().numpy())
    return vectors


def _backbone_features(model, tensors) -> list[np.ndarray]:
    """The pooled backbone features of ``tensors`` alone (transform and backbone, no detection)."""
    import torch

    batch, _ = model.transform(tensors)
    features = model.backbone(batch.tensors)
    if isinstance(features, torch.Tensor):
        features = {"0": features}
    return _pooled(features, batch)


def _measure(detection, probabilities, mirror, width: int, threshold: float):
    boxes = detection["boxes"].float().cpu().numpy().astype(np.float64)
    scores = detection["scores"].float().cpu().numpy().astype(np.float64)
    labels = detection["labels"].cpu().numpy()
    mirror_boxes = mirror["boxes"].float().cpu().numpy().astype(np.float64)
    mirror_boxes = np.stack([width - mirror_boxes[:, 2], mirror_boxes[:, 1], width - mirror_boxes[:, 0],
                             mirror_boxes[:, 3]], axis=1) if len(mirror_boxes) else mirror_boxes.reshape(0, 4)
    mirror_scores = mirror["scores"].float().cpu().numpy().astype(np.float64)
    mirror_labels = mirror["labels"].cpu().numpy()
    kept, mirror_kept = scores >= threshold / 2, mirror_scores >= threshold / 2
    return (uncertainty_of(scores, threshold), confusion_of(probabilities, scores),
            disagreement_of(boxes[kept], scores[kept], labels[kept], mirror_boxes[mirror_kept],
                            mirror_scores[mirror_kept], mirror_labels[mirror_kept]),
            int((scores >= threshold).sum()))


def _read_batches(items: Sequence, batch_size: int, normalization, unnamed: str):
    """The items (paths or arrays) read as the model's input tensors, ``batch_size`` at a time: yields
    ``(batch, errors)``, ``batch`` the ``(index, name, tensor)`` of those read and ``errors`` a
    ``"name: reason"`` for each that could not be (an array is named ``"{unnamed} {index}"``)."""
    from napari_faster_rcnn.core.data.image_files import ImageReadError
    from napari_faster_rcnn.core.prediction.reading import read_image_tensor

    for start in range(0, len(items), batch_size):
        batch, errors = [], []
        for index in range(start, min(start + batch_size, len(items))):
            item = items[index]
            name = str(item) if isinstance(item, (str, Path)) else f"{unnamed} {index}"
            try:
                batch.append((index, name, read_image_tensor(item, normalization)))
            except (ImageReadError, ValueError) as error:
                errors.append(f"{name}: {error}")
        yield batch, errors


def iter_image_measures(model, images: Sequence, threshold: float | None = None, batch_size: int = 4,
                        device: str | None = None) -> Iterator[RankingProgress]:
    """Measure each image (paths or arrays); yields :class:`RankingProgress`, returns the list of
    :class:`~napari_faster_rcnn.core.prediction.doubt.ImageMeasures` of the images that could be read (an
    unreadable one is yielded with ``error``).

    ``threshold`` defaults to the model config's starting score threshold (0.5 for most).
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    config = getattr(model, "config", None)
    if threshold is None:
        threshold = starting_thresholds(config).score_threshold
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"the score threshold must be between 0 and 1, got {threshold}")
    if device is not None:
        model.to(resolve_device(device))
    target = next(model.parameters()).device
    normalization = getattr(config, "normalization", "auto")
    settings = DetectionSettings(min(SCORE_FLOOR, threshold / 2), float(getattr(config, "box_nms_thresh", 0.5)),
                                 max(100, int(getattr(config, "box_detections_per_img", 100))))
    was_training = model.training
    model.eval()
    previous = settings.apply(model)
    items = list(images)
    measures: list[ImageMeasures] = []
    failed = 0
    try:
        for batch, errors in _read_batches(items, batch_size, normalization, "image"):
            for error in errors:
                failed += 1
                yield RankingProgress(len(measures), len(items) - failed, error)
            if not batch:
                continue
            inputs = [t.to(target) for _, _, t in batch] + [t.flip(-1).to(target) for _, _, t in batch]
            with torch.inference_mode():
                detections, probabilities, vectors, most_sure = _forward_with_probabilities(model, inputs)
            half = len(batch)
            for k, (index, name, tensor) in enumerate(batch):
                parts = _measure(detections[k], probabilities[k], detections[half + k], int(tensor.shape[-1]), threshold)
                measures.append(ImageMeasures(index, name, *parts, features=vectors[k],
                                              low_confidence=1.0 - 0.5 * (most_sure[k] + most_sure[half + k])))
            yield RankingProgress(len(measures), len(items) - failed)
    finally:
        previous.apply(model)
        model.train(was_training)
    return measures


def iter_image_features(model, images: Sequence, batch_size: int = 4,
                        device: str | None = None) -> Iterator[RankingProgress]:
    """The pooled backbone features of each image (paths or arrays), from the model's transform and
    backbone only (no detection); yields :class:`RankingProgress` and returns the list of feature
    vectors of the images that could be read (an unreadable one is yielded with ``error``, named
    ``labeled image N`` when it is not a path)."""
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if device is not None:
        model.to(resolve_device(device))
    target = next(model.parameters()).device
    normalization = getattr(getattr(model, "config", None), "normalization", "auto")
    was_training = model.training
    model.eval()
    items = list(images)
    vectors: list[np.ndarray] = []
    failed = 0
    try:
        for batch, errors in _read_batches(items, batch_size, normalization, "labeled image"):
            for error in errors:
                failed += 1
                yield RankingProgress(len(vectors), len(items) - failed, error)
            if batch:
                with torch.inference_mode():
                    vectors.extend(_backbone_features(model, [tensor.to(target) for _, _, tensor in batch]))
                yield RankingProgress(len(vectors), len(items) - failed)
    finally:
        model.train(was_training)
    return vectors
