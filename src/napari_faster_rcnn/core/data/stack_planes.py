"""A stack's planes as positions and as one annotation per plane, without napari.

A stack read as data (time, z, ...) has one annotation file for all its planes; a plane
is named by its leading coordinates (``(t, z)``) or by its position among the stack's
planes, in the order of the leading dimensions, the last one fastest (:func:`plane_index`,
:func:`index_plane`). :func:`split_planes` cuts a stack's annotation into one 2-D annotation
per plane in that order, and :func:`join_planes` puts them back together with the labeled
planes (``planes``, ``labeled_planes``), as the stack's file holds them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation


def plane_index(plane, shape: Sequence[int]) -> int:
    """The position of ``plane`` (its leading coordinates) among the planes of a stack of ``shape``,
    in the order of the leading dimensions (the last one fastest)."""
    return int(np.ravel_multi_index(tuple(int(v) for v in np.asarray(plane).reshape(-1)), tuple(shape)))


def index_plane(index: int, shape: Sequence[int]) -> tuple[int, ...]:
    """The plane (leading coordinates) at position ``index`` (see :func:`plane_index`)."""
    return tuple(int(v) for v in np.unravel_index(int(index), tuple(shape)))


def split_planes(annotation: Annotation, shape: Sequence[int]) -> list[Annotation]:
    """A stack's annotation as one 2-D annotation per plane, in :func:`plane_index` order."""
    shape = tuple(int(s) for s in shape)
    count = int(np.prod(shape))
    planes = annotation.planes if annotation.planes is not None else np.zeros((0, len(shape)), np.int64)
    flat = np.ravel_multi_index(tuple(planes.T), shape) if len(planes) else np.zeros(0, np.int64)
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(count + 1))
    labels = annotation.labels
    result = []
    for index in range(count):
        keep = order[starts[index]:starts[index + 1]]
        result.append(Annotation(annotation.boxes[keep], [labels[i] for i in keep],
                                 None if annotation.scores is None else annotation.scores[keep], annotation.classes))
    return result


def join_planes(annotations: Sequence[Annotation], shape: Sequence[int], labeled: Sequence[int],
                classes: Sequence[str]) -> Annotation:
    """One annotation per plane (in :func:`plane_index` order) and the labeled planes' positions as
    the stack's one annotation: boxes, labels, scores, ``planes`` and ``labeled_planes``."""
    shape = tuple(int(s) for s in shape)
    depth = len(shape)
    counts = [len(a) for a in annotations]
    flat = np.repeat(np.arange(len(annotations)), counts)
    planes = np.stack(np.unravel_index(flat, shape), axis=1).astype(np.int64) if len(flat) else np.zeros((0, depth), np.int64)
    boxes = np.concatenate([a.boxes for a in annotations]) if annotations else np.zeros((0, 4))
    with_scores = any(a.scores is not None for a in annotations)
    scores = (np.concatenate([a.scores if a.scores is not None else np.ones(len(a)) for a in annotations])
              if with_scores else None)
    marked = sorted(int(i) for i in labeled)
    labeled_planes = (np.stack(np.unravel_index(np.asarray(marked, np.int64), shape), axis=1).astype(np.int64)
                      if marked else np.zeros((0, depth), np.int64))
    return Annotation(boxes=boxes, labels=[label for a in annotations for label in a.labels], scores=scores,
                      classes=list(classes), planes=planes, labeled_planes=labeled_planes)
