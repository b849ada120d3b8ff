"""Which image to label next: unlabeled images ranked by how much labeling them should help.

:func:`iter_ranking` runs a trained detector over the images (each image and its
horizontal mirror image in one batch) and measures four kinds of doubt, each
from 0 (none) to 1:

uncertainty
    detections whose score lies near the score threshold ``t``: each counts
    ``c = max(0, 1 - |score - t| / band)`` (``band`` = 60% of the distance from
    ``t`` to 0 or 1, whichever is nearer), and the image gets ``1 - prod(1 - c)``
    (the more doubtful boxes, the higher; a box far above or below ``t`` adds nothing).
confusion
    class confusion from the box head's class probabilities, which torchvision's
    ``RoIHeads.postprocess_detections`` drops: the detected boxes go through the
    model's own RoI pooling, box head and box predictor once more (its parts,
    called as the model calls them), and each box's foreground probabilities
    give ``1 - (p_first - p_second)``; the image gets their mean weighted by the
    boxes' scores (0 for a one-class model, or no box).
disagreement
    between the image and its mirror image: the mirror's boxes are flipped back
    and matched greedily (same class, highest IoU first, IoU >= 0.1) to the
    image's, among the boxes of either scoring at least ``t / 2``; a matched pair
    counts ``1 - IoU`` and an unmatched box 1, each weighted by its score.
low_confidence
    ``1 -`` the mean foreground probability (1 - background) the box head gives the three RPN
    proposals it is surest of (:data:`SURE_PROPOSALS`), averaged over the image and its mirror
    image: an image where the model is sure of no object at all, as on images unlike the training
    images (an image truly without objects ranks high too).

novelty
    only when the images labeled already are given (``labeled``; only their pooled backbone features
    are computed, :func:`iter_image_features`): the distance of the image's pooled backbone features
    to the nearest labeled image's (Euclidean, in units of the root-mean-square distance of all the
    images to their mean; 0 for a copy of a labeled image), so that images unlike everything labeled
    count (the core-set idea, Sener & Savarese 2018). Without labeled images it is 0 and does not count.
    (Cosine similarity, tried first, put images of unseen styles *nearer* the labeled ones than new
    images of the labeled style: it ignores how far from the mean an image lies.)

The four (five) are on different scales (uncertainty is near 1 on most images of a weak model,
low_confidence near 0 on most images of a good one), so each is first put on a common one: its
percentile within the images ranked together (the share of the other images with a lower value,
ties counting half; 0.5 for a single image). ``informativeness`` is the weighted mean of the four
percentiles (weights :class:`RankingWeights`; by default ``low_confidence`` counts most of the four,
as the one image-level sign of an image unlike the training images, then ``disagreement``; ``novelty``,
when it counts, a third of the four together), so it too lies in 0-1 and is relative to the images
ranked together.

The diversity term then chooses the first ``max(top, 16)`` images (:data:`DIVERSITY_GROUP`; one
round of labeling) greedily among the ``3 x max(top, 16)`` most informative ones: each next image
is the one of highest ``informativeness - diversity * redundancy``, where ``redundancy`` is its
highest cosine similarity (0 or more) to the images chosen before it, on the backbone's feature maps
pooled over the image (centred on the mean of the pool and the labeled images), so that
near-duplicates do not fill the top.
``score`` is that value at the time the image was chosen. The images after the first group follow
in order of informativeness (``score`` = ``informativeness``, ``redundancy`` 0), so the diversity
term does not reorder the whole list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.boxes import box_iou
from napari_faster_rcnn.core.prediction.settings import DetectionSettings, resolve_device, starting_thresholds

__all__ = [
    "ImageMeasures",
    "ImageScore",
    "RankingProgress",
    "RankingWeights",
    "confusion_of",
    "disagreement_of",
    "find_unlabeled_images",
    "novelty_of",
    "iter_image_features",
    "iter_image_measures",
    "iter_ranking",
    "order_by_usefulness",
    "percentiles",
    "rank_images",
    "uncertainty_of",
    "unit_features",
]

#: Detections scoring below this are left out of every measure (torchvision's mAP floor).
SCORE_FLOOR = 0.05
#: Boxes of the image and its mirror image overlapping less than this are not a pair.
MATCH_IOU = 0.1
#: low_confidence looks at the mean foreground probability of so many proposals, the surest.
SURE_PROPOSALS = 3
#: The diversity term picks among the ``3 x max(top, DIVERSITY_GROUP)`` most informative images left.
DIVERSITY_GROUP = 16
#: The default weight of ``novelty`` (:class:`RankingWeights`), against 12 for the other four together
#: (chosen between 4 and 12 on the benchmarks: 4 keeps low_confidence first in `bench_ranking.py`).
NOVELTY_WEIGHT = 4.0


@dataclass(frozen=True)
class RankingWeights:
    """How much each part counts: ``informativeness`` is the weighted mean of the four measures'
    percentiles within the images ranked together, and ``diversity`` the penalty per unit of cosine
    similarity to an image ranked higher.

    The defaults were chosen on one benchmark model and pool (``benchmarks/bench_ranking.py``, seed 0)
    and held on other seeds and training lengths: ``low_confidence`` (no object the model is sure of)
    tells images unlike the training images best, ``disagreement`` next.
    """

    uncertainty: float = 1.0
    confusion: float = 1.0
    disagreement: float = 2.0
    low_confidence: float = 8.0
    diversity: float = 0.5
    novelty: float = NOVELTY_WEIGHT  # counts only when labeled images are given

    def __post_init__(self):
        values = (self.uncertainty, self.confusion, self.disagreement, self.low_confidence, self.diversity,
                  self.novelty)
        if min(values) < 0 or sum(values[:4]) <= 0:
            raise ValueError(f"ranking weights must be 0 or more, one measure above 0; got {self}")


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


@dataclass
class ImageScore:
    """One image's place in the ranking: ``image``, ``score`` and the parts of the score."""

    image: str
    score: float
    rank: int  # 1 is the most useful
    uncertainty: float
    confusion: float
    disagreement: float
    informativeness: float
    redundancy: float
    detections: int
    low_confidence: float = 0.0
    novelty: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RankingProgress:
    """Images measured so far, of ``total``; ``error`` names an image that could not be read."""

    done: int
    total: int
    error: str | None = None


# --- the measures of one image (numpy, no model) -------------------------------------------------


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


# --- the ranking (numpy, no model) -------------------------------------------------------------


def percentiles(values: np.ndarray) -> np.ndarray:
    """Each value's share of the other values below it, ties counting half (0.5 for a single value)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    count = len(values)
    if count <= 1:
        return np.full(count, 0.5)
    ordered = np.sort(values)
    below = np.searchsorted(ordered, values, side="left")
    equal = np.searchsorted(ordered, values, side="right") - below - 1  # others of the same value
    return (below + 0.5 * equal) / (count - 1)


def unit_features(features: np.ndarray, labeled_features: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The pooled features of the images ranked and of the labeled images, centred on the mean of both
    together and scaled to length 1 (a vector of length 0 stays 0), so that their dot products are
    cosine similarities."""
    features = np.asarray(features, np.float64).reshape(len(features), -1)
    labeled = (np.zeros((0, features.shape[1])) if labeled_features is None or not len(labeled_features)
               else np.asarray(labeled_features, np.float64).reshape(len(labeled_features), -1))
    if labeled.shape[1] != features.shape[1]:
        raise ValueError(f"the labeled images' features have {labeled.shape[1]} values, the images' {features.shape[1]}")
    both = np.concatenate([features, labeled])
    both = both - both.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(both, axis=1, keepdims=True)
    both = np.divide(both, norms, out=np.zeros_like(both), where=norms > 1e-12)
    return both[:len(features)], both[len(features):]


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


def order_by_usefulness(measures: Sequence[ImageMeasures], weights: RankingWeights | None = None,
                        top: int | None = None, labeled_features: Sequence[np.ndarray] | None = None
                        ) -> list[ImageScore]:
    """Rank measured images greedily, most useful first (see the module docstring); ``top``: only so many.

    ``labeled_features``: the pooled features of the images labeled already (each like
    :attr:`ImageMeasures.features`); they give ``novelty``.
    """
    weights = weights or RankingWeights()
    count = len(measures)
    if count == 0:
        return []
    raw = np.stack([np.asarray(m.features, np.float64).ravel() for m in measures])
    raw_labeled = (np.zeros((0, raw.shape[1])) if labeled_features is None or not len(labeled_features)
                   else np.stack([np.asarray(f, np.float64).ravel() for f in labeled_features]))
    features, labeled = unit_features(raw, raw_labeled)
    novelty = novelty_of(raw, raw_labeled)
    columns = [[m.uncertainty for m in measures], [m.confusion for m in measures],
               [m.disagreement for m in measures], [m.low_confidence for m in measures]]
    mix = [weights.uncertainty, weights.confusion, weights.disagreement, weights.low_confidence]
    if len(labeled):  # without labeled images novelty does not count
        columns.append(novelty)
        mix.append(weights.novelty)
    parts = np.stack([percentiles(column) for column in columns], axis=1)
    mix = np.asarray(mix, np.float64)
    informativeness = parts @ mix / mix.sum()
    group = max(top or 0, DIVERSITY_GROUP)
    by_informativeness = list(np.argsort(-informativeness, kind="stable"))  # ties: the earlier image
    redundancy = np.zeros(count)
    ranked: list[ImageScore] = []
    for rank in range(1, (count if top is None else min(top, count)) + 1):
        if rank <= group:  # the first group: the diversity term, among the 3 x group most informative left
            candidates = np.array(by_informativeness[:3 * group])
            adjusted = informativeness[candidates] - weights.diversity * redundancy[candidates]
            best = int(np.argmax(adjusted))  # ties: the more informative image
            chosen, score, similarity = int(candidates[best]), float(adjusted[best]), float(redundancy[candidates[best]])
            redundancy = np.maximum(redundancy, np.clip(features @ features[chosen], 0.0, 1.0))
        else:  # after it, by informativeness alone
            best = 0
            chosen = int(by_informativeness[0])
            score, similarity = float(informativeness[chosen]), 0.0
        by_informativeness.pop(best)
        m = measures[chosen]
        ranked.append(ImageScore(m.image, score, rank, m.uncertainty, m.confusion, m.disagreement,
                                 float(informativeness[chosen]), similarity, m.detections, m.low_confidence,
                                 float(novelty[chosen])))
    return ranked


# --- which images -------------------------------------------------------------------------------


def find_unlabeled_images(inputs) -> tuple[list[Path], list[tuple[str, str]]]:
    """The unlabeled images among dataset folders and image files: those without an annotation file
    where the folder rules look for one (``target/NAME.pt``/``.json`` beside ``input/``, or
    ``NAME.pt``/``.json`` beside the image).

    Returns
    -------
    (paths, skipped)
        The unlabeled images in the order given (a folder's sorted by name), and ``(path, reason)``
        for what was left out (labeled images among them).

    Raises
    ------
    ValueError
        For a folder without images; ``FileNotFoundError`` for a path that does not exist.
    """
    from napari_faster_rcnn.core.data.folders import annotation_for
    from napari_faster_rcnn.core.prediction.folders import find_images

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    images, skipped = find_images(inputs)
    folders: dict = {}
    unlabeled = []
    for path in images:
        annotation = annotation_for(path, folders)
        if annotation is not None:
            skipped.append((str(path), f"labeled ({annotation.name})"))
        else:
            unlabeled.append(path)
    return unlabeled, skipped


# --- the model ---------------------------------------------------------------------------------


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
    :class:`ImageMeasures` of the images that could be read (an unreadable one is yielded with ``error``).

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


def iter_ranking(model, images: Sequence, top: int | None = None, weights: RankingWeights | None = None,
                 threshold: float | None = None, batch_size: int = 4, device: str | None = None,
                 labeled: Sequence = ()) -> Iterator[RankingProgress]:
    """Measure and rank ``images`` (see the module docstring); yields :class:`RankingProgress` and returns
    the list of :class:`ImageScore`, most useful first (the ``top`` first only, when given).

    ``labeled``: the images labeled already (paths or arrays, like ``images``); only their pooled
    backbone features are computed (after the images are measured; the progress counts both), for
    ``novelty``. Without them, ``novelty`` is 0 and does not count.
    """
    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    labeled = list(labeled)
    measures = []
    ranking = iter_image_measures(model, images, threshold, batch_size, device)
    try:
        while True:
            step = next(ranking)
            yield RankingProgress(step.done, step.total + len(labeled), step.error)
    except StopIteration as stop:
        measures = stop.value or []
    labeled_features = []
    if labeled:
        features = iter_image_features(model, labeled, batch_size, device)
        try:
            while True:
                step = next(features)
                yield RankingProgress(len(measures) + step.done, len(measures) + step.total, step.error)
        except StopIteration as stop:
            labeled_features = stop.value or []
    return order_by_usefulness(measures, weights, top, labeled_features)


def rank_images(model, images: Sequence, **options) -> list[ImageScore]:
    """:func:`iter_ranking` to the end."""
    from napari_faster_rcnn.core.progress import run_to_end

    return run_to_end(iter_ranking(model, images, **options))
