"""The parts every reader of files into layers shares: a box layer's name, an annotation's boxes cut at
the image border or left out, and paging a box layer the reader tied to its boxes once it is in the viewer.

Used by :mod:`.reading` (image files), :mod:`.stack_reading` (stacks) and :mod:`.folder_layers`
(dataset folders). No Qt here.
"""

from __future__ import annotations

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import clip_boxes
from napari_faster_rcnn.layers.slice_view import attach_when_added


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
