"""Which image to label next: unlabeled images ranked by how much labeling them should help.

:func:`iter_ranking` runs a trained detector over the images (each image and its horizontal mirror
image in one batch; :mod:`~napari_faster_rcnn.core.prediction.measuring`), measures how unsure it is
of each, in five ways each from 0 (none) to 1 (``uncertainty``, ``confusion``, ``disagreement``,
``low_confidence`` and, when the labeled images are given, ``novelty``; defined in
:mod:`~napari_faster_rcnn.core.prediction.doubt`), and orders the images by them, most useful first,
near-duplicates kept out of the top (:func:`~napari_faster_rcnn.core.prediction.usefulness.order_by_usefulness`,
which explains the order).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from napari_faster_rcnn.core.prediction.measuring import RankingProgress, iter_image_features, iter_image_measures
from napari_faster_rcnn.core.prediction.usefulness import ImageScore, RankingWeights, order_by_usefulness

__all__ = ["iter_ranking", "rank_images"]


def iter_ranking(model, images: Sequence, top: int | None = None, weights: RankingWeights | None = None,
                 threshold: float | None = None, batch_size: int = 4, device: str | None = None,
                 labeled: Sequence = ()) -> Iterator[RankingProgress]:
    """Measure and rank ``images`` (see the module docstring); yields
    :class:`~napari_faster_rcnn.core.prediction.measuring.RankingProgress` and returns the list of
    :class:`~napari_faster_rcnn.core.prediction.usefulness.ImageScore`, most useful first (the ``top``
    first only, when given).

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
