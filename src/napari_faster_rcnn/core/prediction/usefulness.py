"""The order of the images to label: most useful first, from their measures of doubt
(:mod:`~napari_faster_rcnn.core.prediction.doubt`), numpy only.

The four (five) measures are on different scales (uncertainty is near 1 on most images of a weak model,
low_confidence near 0 on most images of a good one), so each is first put on a common one: its
percentile within the images ranked together (:func:`percentiles`: the share of the other images with
a lower value, ties counting half; 0.5 for a single image). ``informativeness`` is the weighted mean of
the four percentiles (weights :class:`RankingWeights`; by default ``low_confidence`` counts most of the
four, as the one image-level sign of an image unlike the training images, then ``disagreement``;
``novelty``, when it counts, a third of the four together), so it too lies in 0-1 and is relative to
the images ranked together.

The diversity term then chooses the first ``max(top, 16)`` images (:data:`DIVERSITY_GROUP`; one
round of labeling) greedily among the ``3 x max(top, 16)`` most informative ones: each next image
is the one of highest ``informativeness - diversity * redundancy``, where ``redundancy`` is its
highest cosine similarity (0 or more) to the images chosen before it, on the backbone's feature maps
pooled over the image (centred on the mean of the pool and the labeled images, :func:`unit_features`),
so that near-duplicates do not fill the top.
``score`` is that value at the time the image was chosen. The images after the first group follow
in order of informativeness (``score`` = ``informativeness``, ``redundancy`` 0), so the diversity
term does not reorder the whole list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from napari_faster_rcnn.core.prediction.doubt import ImageMeasures, novelty_of

__all__ = ["DIVERSITY_GROUP", "NOVELTY_WEIGHT", "ImageScore", "RankingWeights", "order_by_usefulness", "percentiles",
           "unit_features"]

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


def order_by_usefulness(measures: Sequence[ImageMeasures], weights: RankingWeights | None = None,
                        top: int | None = None, labeled_features: Sequence[np.ndarray] | None = None
                        ) -> list[ImageScore]:
    """Rank measured images greedily, most useful first (see the module docstring); ``top``: only so many.

    ``labeled_features``: the pooled features of the images labeled already (each like
    :attr:`~napari_faster_rcnn.core.prediction.doubt.ImageMeasures.features`); they give ``novelty``.
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
