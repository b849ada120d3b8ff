"""The boxes a training sample trains on: checked when the dataset is built, counted and described.

Everything that can be wrong with a sample's boxes is settled when the dataset
is built, not when a DataLoader worker reaches it: :func:`checked_boxes` takes
the annotations that were read and the image sizes that come from the file
headers, clips boxes reaching outside their image and drops boxes left with no
area, counted (per item and in total) and logged with the file's name. A label
that is not a class is an error naming the file: training on with a class
silently missing would give a model that never learns it. So a run fails
before its first step or not at all, and the counts are the same in every
worker process.

:func:`detection_target` is the target torchvision's detection models take for
an item's boxes; :func:`box_report`, :func:`class_counts`, :func:`size_items`
and :func:`size_record` are what a dataset tells about its boxes. :class:`~.dataset.DetectionDataset` holds the
checked boxes and assembles the items.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import usable_boxes
from napari_faster_rcnn.core.training.samples import label_ids

__all__ = ["box_report", "checked_boxes", "class_counts", "detection_target", "size_items", "size_record"]

logger = logging.getLogger(__name__)


def checked_boxes(samples: Sequence, annotations: Sequence, image_info: Sequence, classes: Sequence[str]):
    """The boxes and label ids every sample trains on, and how many of its boxes were dropped and clipped.

    ``samples`` are :class:`~.samples.TrainingSample`, ``annotations`` their
    :class:`~napari_faster_rcnn.core.data.annotations.Annotation` and ``image_info`` their images'
    ``(height, width, dtype)``, in the same order. Label ids are positions in ``classes`` from 1
    (:func:`~.samples.label_ids` raises, naming the file, for a label that is not a class); boxes are
    clipped to their image and those left with no area dropped
    (:func:`~napari_faster_rcnn.core.data.boxes.usable_boxes`), with a warning naming the file.
    Returns ``(boxes, labels, dropped, clipped)``: a list of xyxy arrays, a list of label id arrays,
    and the dropped and clipped boxes of each sample (tuples of int).
    """
    boxes_of, labels_of, dropped, clipped = [], [], [], []
    for sample, annotation, (height, width, _) in zip(samples, annotations, image_info):
        labels = label_ids(annotation.labels, classes, sample.source)
        boxes, keep, changed = usable_boxes(annotation.boxes, height, width)
        boxes_of.append(boxes)
        labels_of.append(labels[keep])
        dropped.append(int((~keep).sum()))
        clipped.append(changed)
        if dropped[-1] or changed:
            logger.warning(
                "%s: %s", sample.source, _box_problem(dropped[-1], changed, height, width)
            )
    return boxes_of, labels_of, tuple(dropped), tuple(clipped)


def _box_problem(dropped: int, clipped: int, height: int, width: int) -> str:
    parts = []
    if dropped:
        parts.append(f"{dropped} box{'es' if dropped != 1 else ''} with no area inside the image dropped")
    if clipped:
        parts.append(f"{clipped} box{'es' if clipped != 1 else ''} reaching outside it clipped")
    return f"{' and '.join(parts)} (image {width} x {height})"


def detection_target(index: int, boxes: np.ndarray, labels: np.ndarray) -> dict:
    """The target of item ``index`` with ``boxes`` (xyxy) and ``labels`` (ids), as torchvision's
    references use it: ``boxes`` (float32), ``labels`` (int64), ``image_id``, ``area`` and ``iscrowd``."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    # after float32 rounding, so torchvision never sees a box without area
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes = boxes[keep]
    return {
        "boxes": boxes,
        "labels": torch.as_tensor(labels, dtype=torch.int64)[keep],
        "image_id": torch.tensor(index, dtype=torch.int64),
        "area": (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
        "iscrowd": torch.zeros(len(boxes), dtype=torch.int64),
    }


def size_record(image_sizes: Sequence[tuple[int, int]], boxes: Sequence[np.ndarray]) -> dict | None:
    """The median ``height`` and ``width`` of ``image_sizes`` and the 95th percentile of the longer
    side of ``boxes`` (one xyxy array per image; ``box_side``, 0 without boxes); None without images."""
    if not len(image_sizes):
        return None
    sizes = np.array(image_sizes, dtype=np.float64).reshape(-1, 2)
    boxes = np.concatenate([np.zeros((0, 4)), *boxes])
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return {
        "height": float(np.median(sizes[:, 0])),
        "width": float(np.median(sizes[:, 1])),
        "box_side": float(np.percentile(sides, 95)) if len(sides) else 0.0,
    }


def class_counts(labels: Sequence[np.ndarray], classes: Sequence[str]) -> dict[str, int]:
    """Boxes per class of ``classes`` (label id ``k + 1`` is class ``k``), in their order, from
    ``labels`` (one array of label ids per image)."""
    counts = Counter(int(i) for image_labels in labels for i in image_labels)
    return {name: counts.get(index + 1, 0) for index, name in enumerate(classes)}


def size_items(image_info: Sequence, boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
               classes: Sequence[str]) -> list[tuple[tuple[int, int], Annotation]]:
    """``((height, width), Annotation)`` per image of ``image_info`` (``(height, width, dtype)`` each),
    with its ``boxes`` and the names in ``classes`` of its ``labels`` (label id ``k + 1`` is class ``k``)."""
    return [((height, width), Annotation(image_boxes, [classes[int(i) - 1] for i in image_labels]))
            for (height, width, _), image_boxes, image_labels in zip(image_info, boxes, labels, strict=True)]


def box_report(boxes: Sequence[np.ndarray], classes: Sequence[str], dropped: Sequence[int],
               clipped: Sequence[int]) -> str:
    """One line on the images (one array of ``boxes`` each), their boxes of ``classes``, and the boxes
    ``dropped`` and ``clipped`` (counts per image)."""
    empty = sum(1 for image_boxes in boxes if len(image_boxes) == 0)
    text = (
        f"{len(boxes)} images ({empty} without boxes), {sum(map(len, boxes))} boxes of "
        f"{len(classes)} classes"
    )
    if sum(dropped) or sum(clipped):
        images = sum(1 for d, c in zip(dropped, clipped) if d or c)
        text += (
            f"; {sum(dropped)} boxes outside their image dropped, "
            f"{sum(clipped)} clipped (in {images} images)"
        )
    return text
