"""Post-processing of raw detections: score threshold, per-class NMS, class filter.

A model run with its own score threshold and NMS relaxed gives *raw
detections*; the user then picks a score threshold, an NMS IoU threshold and
the classes to keep, and sees the result at once. Three pieces:

- :class:`Thresholds`, saved beside prediction files as ``thresholds.json``
  (:func:`save_thresholds`, :func:`load_thresholds`);
- :func:`filter_detections` / :func:`apply_thresholds` for one image, with
  ``torchvision.ops.batched_nms``;
- :class:`DetectionSet`: the raw detections of many images, filtered all at once.

The rules, the same for one image and for many:

- a detection is kept when its score is at least its class's threshold
  (``class_score_thresholds[label]``, else ``score_threshold``), its label
  is in ``classes`` (``None`` keeps every class), and per-class NMS keeps it;
- NMS runs per image and per class: a box is dropped when a box of its class
  with a higher score that is itself kept overlaps it with IoU above
  ``nms_threshold`` (strictly), as torchvision's ``batched_nms``; ``1.0`` turns
  NMS off. Equal scores rank in the order of the detections.

Greedy NMS decides each box from the boxes scored above it, so dropping the
boxes below a score threshold never changes what NMS does to the others:
filtering by score before or after NMS gives the same boxes. :class:`DetectionSet`
uses this to run NMS once per NMS threshold and apply the score and class
filters as one vectorized mask.

Also here: :func:`accept_predictions`, which turns kept predictions into
labels without duplicating boxes that are already labeled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE, Annotation
from napari_faster_rcnn.core.data.atomic_files import atomic_write_bytes
from napari_faster_rcnn.core.data.boxes import box_iou

__all__ = [
    "ACCEPT_DUPLICATE_IOU",
    "DetectionSet",
    "Thresholds",
    "accept_predictions",
    "apply_thresholds",
    "filter_detections",
    "load_thresholds",
    "save_thresholds",
    "save_thresholds_file",
]

#: An accepted prediction is skipped when a label of the same class already
#: covers it with at least this IoU (so accepting twice adds nothing).
ACCEPT_DUPLICATE_IOU = 0.7


# --- thresholds -----------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """What passes from raw detections to predictions.

    Attributes
    ----------
    score_threshold : float
        Keep detections scoring at least this (0 to 1).
    nms_threshold : float
        Per-class NMS IoU threshold (0 to 1; 1 keeps overlapping boxes).
    classes : tuple of str or None
        Labels to keep; ``None`` keeps every class.
    class_score_thresholds : tuple of (str, float) pairs or None
        A score threshold of its own per label (as ``calibrate`` chooses them),
        over ``score_threshold`` for the labels it names. Given as a dict or
        pairs; kept as sorted pairs (hashable); :meth:`score_threshold_of` reads it.
    """

    score_threshold: float = 0.5
    nms_threshold: float = 0.5
    classes: tuple[str, ...] | None = None
    class_score_thresholds: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self):
        for name in ("score_threshold", "nms_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.classes is not None:
            if isinstance(self.classes, str) or not all(isinstance(c, str) for c in self.classes):
                raise ValueError(f"classes must be a list of class names or null, got {self.classes!r}")
            object.__setattr__(self, "classes", tuple(self.classes))
        if self.class_score_thresholds is not None:
            pairs = self.class_score_thresholds
            pairs = pairs.items() if isinstance(pairs, dict) else pairs
            try:
                pairs = [(name, value) for name, value in pairs]
            except (TypeError, ValueError):
                raise ValueError("class_score_thresholds must map class names to numbers from 0 to 1, got "
                                 f"{self.class_score_thresholds!r}") from None
            for name, value in pairs:
                if (not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, (int, float))
                        or not 0.0 <= float(value) <= 1.0):
                    raise ValueError(f"class_score_thresholds must map class names to numbers from 0 to 1, got "
                                     f"{name!r}: {value!r}")
            object.__setattr__(self, "class_score_thresholds",
                               tuple(sorted((name, float(value)) for name, value in dict(pairs).items())))

    def score_threshold_of(self, label: str) -> float:
        """The score threshold of detections labeled ``label``."""
        return dict(self.class_score_thresholds or ()).get(label, self.score_threshold)

    def to_dict(self) -> dict:
        """``{"score_threshold", "nms_threshold", "classes"}`` (and ``"class_score_thresholds"``, a
        ``{label: threshold}`` object, when set), as in ``thresholds.json``."""
        values = {
            "score_threshold": self.score_threshold,
            "nms_threshold": self.nms_threshold,
            "classes": None if self.classes is None else list(self.classes),
        }
        if self.class_score_thresholds is not None:
            values["class_score_thresholds"] = dict(self.class_score_thresholds)
        return values

    @classmethod
    def from_dict(cls, mapping) -> Thresholds:
        """Build from a ``thresholds.json`` dict; missing keys take the defaults.

        Raises ``ValueError`` naming the bad key.
        """
        if not isinstance(mapping, dict):
            raise ValueError(
                f"expected an object with score_threshold, nms_threshold, classes; got {type(mapping).__name__}"
            )
        unknown = set(mapping) - {"score_threshold", "nms_threshold", "classes", "class_score_thresholds"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} (expected score_threshold, nms_threshold, classes, "
                             "class_score_thresholds)")
        return cls(**mapping)

    def replace(self, **changes) -> Thresholds:
        """A copy with some fields changed."""
        return Thresholds(**{**self.to_dict(), **changes})


#: Thresholds that keep every raw detection.
KEEP_ALL = Thresholds(score_threshold=0.0, nms_threshold=1.0, classes=None)


def save_thresholds(folder: str | Path, thresholds: Thresholds) -> Path:
    """Write ``thresholds.json`` into the prediction folder ``folder`` (atomically)."""
    return save_thresholds_file(Path(folder) / THRESHOLDS_FILE, thresholds)


def save_thresholds_file(path: str | Path, thresholds: Thresholds) -> Path:
    """Write ``thresholds`` to the file ``path`` as ``thresholds.json`` holds them (atomically)."""
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(thresholds.to_dict(), indent=1) + "\n").encode("utf-8"))
    return path


def load_thresholds(folder: str | Path) -> Thresholds | None:
    """The thresholds saved in prediction folder ``folder``, or None when it has none.

    Raises
    ------
    ValueError
        If ``thresholds.json`` is there but unreadable; the message names it.
    """
    path = Path(folder) / THRESHOLDS_FILE
    if not path.is_file():
        return None
    try:
        return Thresholds.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a thresholds file ({error})") from None


# --- one image -------------------------------------------------------------------


def filter_detections(
    annotation: Annotation,
    score_threshold: float = 0.5,
    nms_threshold: float = 0.5,
    classes: Sequence[str] | None = None,
    class_score_thresholds: dict[str, float] | None = None,
) -> np.ndarray:
    """Indices of the detections of one image that pass (ascending).

    Score and class filters, then per-class NMS with
    ``torchvision.ops.batched_nms``. Detections without scores count as 1.0.
    ``class_score_thresholds`` (label -> threshold) overrides ``score_threshold``
    for the labels it names.
    """
    import torch
    from torchvision.ops import batched_nms

    scores = annotation.scores if annotation.scores is not None else np.ones(len(annotation))
    if class_score_thresholds:
        own = dict(class_score_thresholds)
        limits = np.fromiter((own.get(label, score_threshold) for label in annotation.labels), float, len(annotation))
        keep = scores >= limits
    else:
        keep = scores >= score_threshold
    if classes is not None:
        wanted = set(classes)
        keep &= np.fromiter((label in wanted for label in annotation.labels), bool, len(annotation))
    candidates = np.flatnonzero(keep)
    if len(candidates) == 0 or nms_threshold >= 1.0:
        return candidates
    _, class_ids = np.unique(np.asarray(annotation.labels, dtype=object)[candidates], return_inverse=True)
    kept = batched_nms(
        torch.from_numpy(annotation.boxes[candidates]),
        torch.from_numpy(np.ascontiguousarray(scores[candidates], dtype=np.float64)),
        torch.from_numpy(class_ids.astype(np.int64).reshape(-1)),
        float(nms_threshold),
    )
    return np.sort(candidates[kept.numpy()])


def apply_thresholds(annotation: Annotation, thresholds: Thresholds) -> Annotation:
    """The detections of ``annotation`` that pass ``thresholds``, in their original order."""
    return annotation.select(
        filter_detections(annotation, thresholds.score_threshold, thresholds.nms_threshold, thresholds.classes,
                          dict(thresholds.class_score_thresholds or ()))
    )


# --- many images -------------------------------------------------------------------


class DetectionSet:
    """The raw detections of many images, filtered all at once.

    Parameters
    ----------
    annotations
        One annotation per image, with scores (missing scores count as 1.0).

    Notes
    -----
    NMS runs per image, the classes of an image kept apart by shifting their
    boxes to disjoint coordinates (torchvision's ``batched_nms`` trick), with
    the shifted boxes made once for the whole set. Its result is cached per
    NMS threshold, so moving the score threshold or the class filter costs one
    vectorized mask over every detection.
    """

    def __init__(self, annotations: Sequence[Annotation]):
        self.annotations = list(annotations)
        counts = np.array([len(a) for a in self.annotations], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.boxes = np.concatenate([a.boxes for a in self.annotations]) if self.annotations else np.zeros((0, 4))
        self.scores = np.concatenate(
            [a.scores if a.scores is not None else np.ones(len(a)) for a in self.annotations]
        ) if self.annotations else np.zeros(0)
        labels = [label for a in self.annotations for label in a.labels]
        self.labels = list(dict.fromkeys(labels))  # class names, in order of appearance
        index = {name: i for i, name in enumerate(self.labels)}
        self.label_ids = np.fromiter((index[label] for label in labels), np.int64, len(labels))
        self._shifted = None
        self._nms_cache: dict[float, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.annotations)

    @property
    def size(self) -> int:
        """The number of raw detections."""
        return len(self.scores)

    def image_slice(self, index: int) -> slice:
        """Where image ``index``'s detections lie in the flat arrays."""
        return slice(int(self.starts[index]), int(self.starts[index + 1]))

    def keep_mask(self, thresholds: Thresholds) -> np.ndarray:
        """A ``(size,)`` bool mask of the detections that pass, over every image."""
        if thresholds.class_score_thresholds:
            limits = np.array([thresholds.score_threshold_of(name) for name in self.labels] + [0.0])
            keep = self.scores >= limits[self.label_ids]
        else:
            keep = self.scores >= thresholds.score_threshold
        if thresholds.classes is not None:
            wanted = set(thresholds.classes)
            keep &= np.array([name in wanted for name in self.labels] + [False], dtype=bool)[self.label_ids]
        if thresholds.nms_threshold < 1.0:
            keep &= self.nms_mask(thresholds.nms_threshold)
        return keep

    def nms_mask(self, nms_threshold: float) -> np.ndarray:
        """Which detections per-image, per-class NMS keeps at ``nms_threshold`` (cached)."""
        key = float(nms_threshold)
        if key not in self._nms_cache:
            if len(self._nms_cache) >= 8:
                self._nms_cache.pop(next(iter(self._nms_cache)))
            self._nms_cache[key] = self._run_nms(key)
        return self._nms_cache[key]

    def _run_nms(self, nms_threshold: float) -> np.ndarray:
        import torch
        from torchvision.ops import nms

        if self._shifted is None:
            # Classes of one image never overlap once shifted by class id x (extent + 1).
            extent = float(self.boxes.max() - min(self.boxes.min(), 0.0) + 1.0) if self.size else 1.0
            shifted = self.boxes - min(self.boxes.min(), 0.0) if self.size else self.boxes
            self._shifted = torch.from_numpy(shifted + (self.label_ids * extent)[:, None])
            self._scores = torch.from_numpy(np.ascontiguousarray(self.scores, dtype=np.float64))
        keep = np.zeros(self.size, dtype=bool)
        for image in range(len(self.annotations)):
            start, stop = int(self.starts[image]), int(self.starts[image + 1])
            if stop - start:
                kept = nms(self._shifted[start:stop], self._scores[start:stop], nms_threshold).numpy()
                keep[start + kept] = True
        return keep

    def filtered(self, thresholds: Thresholds) -> list[Annotation]:
        """Every image's detections that pass ``thresholds``, as annotations."""
        keep = self.keep_mask(thresholds)
        return [
            annotation.select(np.flatnonzero(keep[self.image_slice(i)]))
            for i, annotation in enumerate(self.annotations)
        ]

    def filtered_image(self, index: int, thresholds: Thresholds) -> Annotation:
        """One image's detections that pass (computed for that image alone)."""
        return apply_thresholds(self.annotations[index], thresholds)


# --- predictions to labels ---------------------------------------------------------


def accept_predictions(
    labels: Annotation,
    predictions: Annotation,
    classes: Sequence[str] | None = None,
    duplicate_iou: float = ACCEPT_DUPLICATE_IOU,
) -> tuple[Annotation, int]:
    """Add predicted boxes to an image's labels, skipping ones already labeled.

    Prediction labels are resolved against ``classes`` (by default the labels'
    class list) as :func:`~.metrics.map_labels` does, so a model's ``"1"``
    becomes the first class's name. A predicted box is skipped when a label of
    the same class overlaps it with IoU of at least ``duplicate_iou``. Scores
    are dropped: labels have none.

    Returns
    -------
    (Annotation, int)
        The labels with the new boxes appended, and how many were added.
    """
    from napari_faster_rcnn.core.evaluation.matching import map_labels

    if classes is None:
        classes = list(labels.classes or []) or list(dict.fromkeys(labels.labels))
    names = map_labels(predictions.labels, classes)
    overlap = box_iou(predictions.boxes, labels.boxes)
    same_class = np.array(names, dtype=object)[:, None] == np.array(labels.labels, dtype=object)[None, :]
    duplicate = ((overlap >= duplicate_iou) & same_class).any(axis=1) if len(labels) else np.zeros(len(names), bool)
    add = np.flatnonzero(~duplicate)
    all_classes = list(dict.fromkeys([*(labels.classes or classes), *(names[i] for i in add)]))
    merged = Annotation(
        boxes=np.concatenate([labels.boxes, predictions.boxes[add]]),
        labels=[*labels.labels, *(names[i] for i in add)],
        classes=all_classes,
    )
    return merged, len(add)
