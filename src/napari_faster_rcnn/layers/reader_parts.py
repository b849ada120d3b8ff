"""The parts every reader of files into layers shares: a box layer's name, an annotation's boxes cut at
the image border or left out, paging a box layer the reader tied to its boxes once it is in the viewer, and
predictions opened as the ``thresholds.json`` beside them keeps them.

Used by :mod:`.reading` (image files), :mod:`.stack_reading` (stacks) and :mod:`.folder_layers`
(dataset folders). No Qt here.
"""

from __future__ import annotations

import logging

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import clip_boxes
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.slice_view import attach_when_added

logger = logging.getLogger(__name__)


def value_range(sample: np.ndarray) -> list:
    """``[low, high]`` of ``sample``, for contrast limits (``high`` above ``low`` for a flat sample)."""
    low, high = float(sample.min()), float(sample.max())
    return [low, high if high > low else low + 1]


def channel_ranges(pixels: np.ndarray) -> list:
    """:func:`value_range` of each channel of ``pixels`` (channels last)."""
    return [value_range(pixels[..., channel]) for channel in range(pixels.shape[-1])]


def channel_names(stem: str, count: int) -> list[str]:
    """The names of the layers a microscope's ``count`` channels open as: ``"STEM [channel 0]"``, ..."""
    return [f"{stem} [channel {channel}]" for channel in range(int(count))]


def box_layer_name(stem: str, annotation: Annotation) -> str:
    """``STEM boxes``, or ``STEM predictions`` when ``annotation`` has scores."""
    return f"{stem} {'predictions' if annotation.scores is not None else 'boxes'}"


def no_boxes_like(annotation: Annotation) -> Annotation:
    """No boxes, with ``annotation``'s classes (and an empty score column when it has scores)."""
    return Annotation(boxes=np.zeros((0, 4)), labels=[], scores=None if annotation.scores is None else np.zeros(0),
                      classes=annotation.classes)


def clipped(annotation: Annotation, size) -> Annotation:
    """``annotation`` with its boxes cut at the image border (as a box layer shows them and the writer saves)."""
    if size is None:
        return annotation
    return Annotation(boxes=clip_boxes(annotation.boxes, *size), labels=list(annotation.labels),
                      scores=annotation.scores, classes=annotation.classes)


def attach_held(held, key: str, make=None) -> None:
    """Page the layer tied to ``held`` once it is in the viewer that is opening it (napari's current one);
    ``make(viewer, layer)`` makes the paging model (default: a SliceBoxes)."""
    try:
        from napari import current_viewer

        viewer = current_viewer()
    except ImportError:  # pragma: no cover - napari is a dependency
        viewer = None
    if viewer is not None:
        attach_when_added(viewer, key, held, make=make)


def predictions_thresholds(metadata: dict):
    """The :class:`~napari_faster_rcnn.core.prediction.thresholds.Thresholds` of ``thresholds.json`` beside
    the prediction files the layer's ``metadata`` names (all in one folder), or None (none there, or
    unreadable: then every box shows, as before, and the log says why)."""
    from napari_faster_rcnn.core.prediction.thresholds import load_thresholds

    folders = {file.parent for file in conventions.annotation_paths(metadata) if file is not None}
    if len(folders) != 1:
        return None
    try:
        return load_thresholds(folders.pop())
    except ValueError as error:
        logger.warning("%s: the predictions show unfiltered", error)
        return None


def tuned_pages(held, thresholds):
    """``make(viewer, layer)`` for :func:`~.reader_parts.attach_held`: the layer paged by a
    :class:`~.predictions.PredictionPages` over the held raw detections, filtered by ``thresholds`` (what
    Tune predictions would start from), so that a folder of ``predict --raw`` files does not open as
    every overlapping raw box."""
    def make(viewer, layer):
        from napari_faster_rcnn.layers.predictions import PredictionPages

        return PredictionPages(viewer, layer, held.annotations, thresholds)

    return make
