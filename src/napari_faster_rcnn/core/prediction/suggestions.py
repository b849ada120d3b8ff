"""Box suggestions while labeling, without napari: which of a model's boxes to show on an image,
what was rejected there, predicting ahead of the person, and the simulated labeler of the benchmark.

A model's raw detections of an image (see :func:`~.run.iter_predictions`) become *suggestions* by

1. the score threshold and per-class NMS (:func:`~.thresholds.apply_thresholds`);
2. leaving out every detection that a label of the image already covers, whatever the classes
   (a box labeled under one class is not offered again under another), and every detection that a
   box the person rejected on that image UNDER ITS CLASS covers (when the rejected boxes come with
   their classes; without, whatever the classes): "covers" is an IoU of at least
   :data:`COVERED_IOU` (0.5).

Rejected boxes are kept per image in a :class:`RejectedBoxes` (in memory), or, with their classes,
in a :class:`~napari_faster_rcnn.core.prediction.rejections.RejectedSuggestions` (the labeling
widget's: written to a JSON file in the images' folder, so that they last across sessions).
Because the rule is an overlap rather than identity, a rejected box also stays away when a
retrained model puts it a few pixels elsewhere.

Predicting ahead
    :class:`PredictAhead` holds the images the person will want next (the one shown first, then
    the next ones of the folder) and a bounded :class:`SuggestionCache` of raw detections;
    :func:`iter_suggestions` is the generator a worker thread drives: it takes the first wanted
    image not in the cache, predicts it, and yields ``(key, raw detections)``, until nothing is
    wanted. The caller puts the results into the cache (on its own thread) and asks again after
    each page turn.

The figure's user
    :func:`simulated_labeling` counts what a person who accepts the suggestions that match a true
    box (IoU at least 0.7, same class) and draws the rest has to draw.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.evaluation.matching import overlapping_pairs
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds

__all__ = [
    "COVERED_IOU",
    "ACCEPT_IOU",
    "CACHE_SIZE",
    "LOOK_AHEAD",
    "RejectedBoxes",
    "SuggestionCache",
    "PredictAhead",
    "SimulatedLabeling",
    "covered_mask",
    "shown_suggestions",
    "iter_suggestions",
    "simulated_labeling",
]

#: A suggestion is not shown when a label or a rejected box of its image overlaps it this much (IoU).
COVERED_IOU = 0.5
#: The simulated person accepts a suggestion whose IoU with a true box of its class is at least this.
ACCEPT_IOU = 0.7
#: Images whose raw detections are kept (the least recently used go first).
CACHE_SIZE = 64
#: Images predicted ahead of the one shown.
LOOK_AHEAD = 4


# --- which suggestions to show ---------------------------------------------------------------


def covered_mask(boxes: np.ndarray, others: np.ndarray, iou: float = COVERED_IOU) -> np.ndarray:
    """For each of ``boxes``, whether one of ``others`` overlaps it with IoU of at least ``iou``.

    Only boxes that can overlap are compared (:func:`~napari_faster_rcnn.core.evaluation.matching.overlapping_pairs`),
    so an image of 100,000 labels costs about its labels, not labels x suggestions.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    covered = np.zeros(len(boxes), dtype=bool)
    if len(boxes) == 0 or len(others) == 0:
        return covered
    for b_index, _, overlap in overlapping_pairs(others, np.zeros(len(others)), boxes, np.zeros(len(boxes))):
        covered[b_index[overlap >= iou]] = True
    return covered


def shown_suggestions(raw: Annotation, thresholds: Thresholds, labels: Annotation | None = None,
                      rejected: np.ndarray | None = None, iou: float = COVERED_IOU,
                      rejected_labels: Sequence[str] | None = None) -> Annotation:
    """The suggestions to show on an image: ``raw`` detections through ``thresholds``, less those that
    a label (``labels``) or a rejected box (``rejected``, ``(N, 4)``) covers (module docstring). With
    ``rejected_labels`` (the class of each rejected box) a rejected box covers suggestions of its class only."""
    kept = apply_thresholds(raw, thresholds)
    others = [np.zeros((0, 4))]
    if labels is not None:
        others.append(labels.boxes)
    rejected = np.zeros((0, 4)) if rejected is None else np.asarray(rejected, dtype=np.float64).reshape(-1, 4)
    if rejected_labels is None:
        others.append(rejected)
    covered = covered_mask(kept.boxes, np.concatenate(others), iou)
    if rejected_labels is not None and len(rejected) and len(kept):
        rejected_labels = np.asarray([str(label) for label in rejected_labels], dtype=object)
        if len(rejected_labels) != len(rejected):
            raise ValueError(f"{len(rejected)} rejected boxes with {len(rejected_labels)} labels")
        suggested = np.asarray([str(label) for label in kept.labels], dtype=object)
        for name in set(rejected_labels.tolist()):
            same = np.flatnonzero(suggested == name)
            if len(same):
                covered[same] |= covered_mask(kept.boxes[same], rejected[rejected_labels == name], iou)
    return kept.select(np.flatnonzero(~covered))


class RejectedBoxes:
    """The boxes rejected on each image (keyed by anything hashable: the image's path), in memory."""

    def __init__(self):
        self._boxes: dict[Hashable, np.ndarray] = {}

    def add(self, key: Hashable, boxes) -> None:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes):
            self._boxes[key] = np.concatenate([self.get(key), boxes])

    def get(self, key: Hashable) -> np.ndarray:
        """The boxes rejected on image ``key``, ``(N, 4)``."""
        return self._boxes.get(key, np.zeros((0, 4)))

    def __len__(self) -> int:
        """Boxes rejected on all images."""
        return sum(len(boxes) for boxes in self._boxes.values())


# --- predicting ahead ------------------------------------------------------------------------


class SuggestionCache:
    """Raw detections of the last ``size`` images used (thread-safe)."""

    def __init__(self, size: int = CACHE_SIZE):
        if size < 1:
            raise ValueError(f"the cache holds at least one image, got {size}")
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Annotation | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, raw: Annotation) -> None:
        with self._lock:
            self._items[key] = raw
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class PredictAhead:
    """What to predict next: the images wanted, in order (set by the labeling side, read by the worker).

    :meth:`want` replaces the list (the image shown first, then the next ones); :meth:`next_wanted`
    gives the first one not in the cache nor being predicted, and :meth:`done` tells that an image's
    detections are in the cache (or could not be had). :meth:`stop` ends the worker after the image
    in progress.
    """

    def __init__(self, cache: SuggestionCache):
        self.cache = cache
        self._wanted: list[tuple[Hashable, object]] = []
        self._busy: set = set()  # handed to the worker, not yet in the cache
        self._failed: set = set()  # could not be predicted: not tried again
        self._stopped = False
        self._lock = threading.Lock()

    def want(self, items: Sequence[tuple[Hashable, object]]) -> None:
        """``items``: ``(key, image)`` pairs (an image path or array), the most wanted first."""
        with self._lock:
            self._wanted = list(items)
            self._stopped = False

    def next_wanted(self) -> tuple[Hashable, object] | None:
        with self._lock:
            if self._stopped:
                return None
            for key, item in self._wanted:
                if key not in self._busy and key not in self._failed and key not in self.cache:
                    self._busy.add(key)
                    return key, item
            return None

    def done(self, key: Hashable) -> None:
        with self._lock:
            self._busy.discard(key)

    def failed(self, key: Hashable) -> None:
        """Image ``key`` could not be predicted: it is not tried again."""
        with self._lock:
            self._failed.add(key)
            self._busy.discard(key)

    def pending(self) -> bool:
        """Whether some wanted image is neither cached nor being predicted."""
        with self._lock:
            return not self._stopped and any(key not in self._busy and key not in self._failed and key not in self.cache for key, _ in self._wanted)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wanted = []


def iter_suggestions(predict: Callable[[object], Annotation], ahead: PredictAhead) -> Iterator[tuple[Hashable, Annotation | None, str | None]]:
    """Predict the wanted images one by one: yields ``(key, raw detections, None)``, or
    ``(key, None, reason)`` for an image that could not be read, until none is wanted.

    ``predict(image)`` gives one image's raw detections (an image path or array). The results are
    not cached here: the caller puts them into ``ahead.cache`` on its own thread, so that an image
    counts as ready only when it can be shown.
    """
    from napari_faster_rcnn.core.data.image_files import ImageReadError

    while True:
        wanted = ahead.next_wanted()
        if wanted is None:
            return
        key, item = wanted
        try:
            raw = predict(item)
        except (ImageReadError, ValueError) as error:
            ahead.failed(key)
            yield key, None, str(error)
            continue
        yield key, raw, None


def model_predictor(model, classes: Sequence[str], device: str | None = None) -> Callable[[object], Annotation]:
    """``predict(image) -> raw detections`` of a detector (``LoadedCheckpoint.model``) for one image."""
    from napari_faster_rcnn.core.prediction.run import iter_predictions

    def predict(item) -> Annotation:
        records = list(iter_predictions(model, [item], classes, batch_size=1, device=device, read_ahead=0, raw=True))
        record = records[0]
        if record.annotation is None:
            raise ValueError(record.error)
        return record.annotation

    return predict


# --- the simulated person of the figure --------------------------------------------------------


@dataclass
class SimulatedLabeling:
    """What a simulated person did on a set of images.

    Attributes
    ----------
    boxes : int
        True boxes.
    accepted : int
        Suggestions accepted (each matches one true box of its class with IoU at least ``iou``).
    drawn : int
        True boxes drawn by hand: those no accepted suggestion matched.
    rejected : int
        Suggestions not accepted.
    """

    boxes: int = 0
    accepted: int = 0
    drawn: int = 0
    rejected: int = 0

    def __add__(self, other: SimulatedLabeling) -> SimulatedLabeling:
        return SimulatedLabeling(self.boxes + other.boxes, self.accepted + other.accepted,
                                 self.drawn + other.drawn, self.rejected + other.rejected)

    @property
    def fewer_drawn(self) -> float:
        """The fraction of boxes the person did not draw, against labeling from scratch (all drawn)."""
        return 1.0 - self.drawn / self.boxes if self.boxes else 0.0


def simulated_labeling(truth: Annotation, suggestions: Annotation, iou: float = ACCEPT_IOU) -> SimulatedLabeling:
    """A person who accepts the suggestions matching a true box (IoU at least ``iou``, the same class)
    and draws the true boxes left: one image.

    Matching is greedy and one-to-one, the best scored suggestion first, each taking the unmatched
    true box of its class it overlaps most (as VOC's evaluation matches detections).
    """
    from napari_faster_rcnn.core.data.boxes import box_iou

    overlap = box_iou(suggestions.boxes, truth.boxes)
    same = np.array(suggestions.labels, dtype=object)[:, None] == np.array(truth.labels, dtype=object)[None, :]
    overlap = np.where(same, overlap, -1.0) if len(suggestions) and len(truth) else overlap
    scores = suggestions.scores if suggestions.scores is not None else np.ones(len(suggestions))
    taken = np.zeros(len(truth), dtype=bool)
    accepted = 0
    for index in np.argsort(-scores, kind="stable"):
        if not len(truth):
            break
        candidates = np.where(taken, -1.0, overlap[index])
        best = int(np.argmax(candidates))
        if candidates[best] >= iou:
            taken[best] = True
            accepted += 1
    return SimulatedLabeling(boxes=len(truth), accepted=accepted, drawn=len(truth) - accepted,
                             rejected=len(suggestions) - accepted)
