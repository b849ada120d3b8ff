"""Very many boxes on one image: an editable window around the view, and one picture of the rest.

napari's Shapes layer keeps one Python object per shape: 100,000 rectangles take it
8 s (quiet 2-core machine) to 30 s (loaded) to open and about a second per added or
deleted box. Above :data:`~napari_faster_rcnn.layers.conventions.WINDOW_THRESHOLD` boxes on
the image shown, :class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes` therefore puts only
the boxes around the view in the box layer (at most
:data:`~napari_faster_rcnn.layers.conventions.WINDOW_CAP`: the view and half a view on each
side, else the view alone, else none: "zoom in to edit") and draws all the others as
outlines in one RGBA image layer (the *display* layer), made with numpy in a fraction of a
second. The full annotation stays in the paging model; edits in the window go back into it,
so saving and every widget see every box.

No Qt here.
"""

from __future__ import annotations

import uuid

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.layers import box_colors, conventions

#: The display image's longest side at most (a coarser picture of a larger image, scaled up).
DISPLAY_MAX_SIDE = 4096
#: The window covers the view and this fraction of it on each side, so that small pans stay inside it.
MARGIN = 0.5
ZOOM_IN_HINT = "zoom in to edit these boxes"


def subset(annotation: Annotation, mask: np.ndarray) -> Annotation:
    """The boxes of ``annotation`` where ``mask`` is true, in order."""
    labels = [label for label, keep in zip(annotation.labels, mask) if keep]
    scores = None if annotation.scores is None else annotation.scores[mask]
    return Annotation(boxes=annotation.boxes[mask], labels=labels, scores=scores, classes=annotation.classes)


def join(first: Annotation, second: Annotation, classes) -> Annotation:
    """``first``'s boxes then ``second``'s, as one annotation."""
    if first.scores is None and second.scores is None:
        scores = None
    else:
        scores = np.concatenate([np.ones(len(a)) if a.scores is None else a.scores for a in (first, second)])
    return Annotation(boxes=np.concatenate([first.boxes.reshape(-1, 4), second.boxes.reshape(-1, 4)]),
                      labels=list(first.labels) + list(second.labels), scores=scores, classes=list(classes))


def camera(viewer):
    """The viewer's camera model (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def view_rect(viewer, layer) -> np.ndarray:
    """The part of the canvas's world shown now, in ``layer``'s data coordinates:
    ``[x0, y0, x1, y1]`` (a box, like the annotations'). The canvas's size is napari's model of it
    (``viewer.canvas.size``, height x width), the camera's zoom is screen pixels per world unit."""
    model = camera(viewer)
    center = np.asarray(model.center[-2:], dtype=float)
    half = np.asarray(viewer.canvas.size[-2:], dtype=float) / 2 / max(float(model.zoom), 1e-12)
    scale = np.asarray(layer.scale[-2:], dtype=float)
    translate = np.asarray(layer.translate[-2:], dtype=float)
    low = (center - half - translate) / scale
    high = (center + half - translate) / scale
    return np.array([low[1], low[0], high[1], high[0]])


def grow(rect: np.ndarray, fraction: float) -> np.ndarray:
    width, height = rect[2] - rect[0], rect[3] - rect[1]
    return rect + np.array([-width, -height, width, height]) * fraction


def inside(rect: np.ndarray, outer: np.ndarray) -> bool:
    return bool(outer[0] <= rect[0] and outer[1] <= rect[1] and rect[2] <= outer[2] and rect[3] <= outer[3])


def area(rect: np.ndarray) -> float:
    return float(max(rect[2] - rect[0], 0) * max(rect[3] - rect[1], 0))


def touching(boxes: np.ndarray, rect: np.ndarray) -> np.ndarray:
    """Which ``boxes`` (xyxy) overlap ``rect`` (edges included)."""
    return (boxes[:, 0] <= rect[2]) & (boxes[:, 2] >= rect[0]) & (boxes[:, 1] <= rect[3]) & (boxes[:, 3] >= rect[1])


def choose_window(boxes: np.ndarray, view: np.ndarray, cap: int):
    """The boxes to edit and the region they cover: the view grown by :data:`MARGIN` when that holds
    at most ``cap`` boxes, else the view itself, else none (``(all-false mask, None)``)."""
    for rect in (grow(view, MARGIN), view):
        mask = touching(boxes, rect)
        if mask.sum() <= cap:
            return mask, rect
    return np.zeros(len(boxes), dtype=bool), None


def display_scale(size) -> float:
    """The display image's pixels per image pixel for an image of ``size`` (height, width)."""
    return min(1.0, DISPLAY_MAX_SIDE / max(max(size), 1))


def draw_outlines(boxes: np.ndarray, colors: np.ndarray, size, scale: float) -> np.ndarray:
    """An RGBA picture (uint8) of the outlines of ``boxes`` (xyxy, image pixels) in ``colors``
    (one RGBA row per box, 0..1) on a transparent image of ``size`` (height, width) times ``scale``.

    Box edges at image coordinate ``v`` land in display pixel ``floor((v + 0.5) * scale)``; the
    display layer is placed with :func:`display_placement`.
    """
    height, width = (max(int(np.ceil(s * scale)), 1) for s in size)
    picture = np.zeros((height, width, 4), dtype=np.uint8)
    if len(boxes) == 0:
        return picture
    cells = np.floor((np.asarray(boxes, dtype=float) + 0.5) * scale).astype(np.int64)
    x0, x1 = np.clip(cells[:, 0], 0, width - 1), np.clip(cells[:, 2], 0, width - 1)
    y0, y1 = np.clip(cells[:, 1], 0, height - 1), np.clip(cells[:, 3], 0, height - 1)
    rgba = np.clip(np.round(np.asarray(colors, dtype=float) * 255), 0, 255).astype(np.uint8)
    for fixed, start, stop, horizontal in ((y0, x0, x1, True), (y1, x0, x1, True),
                                           (x0, y0, y1, False), (x1, y0, y1, False)):
        lengths = stop - start + 1
        along = np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        across = np.repeat(fixed, lengths)
        color = np.repeat(rgba, lengths, axis=0)
        if horizontal:
            picture[across, along] = color
        else:
            picture[along, across] = color
    return picture


def clear_region(picture: np.ndarray, rect: np.ndarray, scale: float) -> np.ndarray:
    """A copy of ``picture`` (see :func:`draw_outlines`) made transparent inside ``rect`` (xyxy, image pixels)."""
    cleared = picture.copy()
    height, width = picture.shape[:2]
    x0, y0 = (int(np.clip(np.floor((v + 0.5) * scale), 0, n)) for v, n in ((rect[0], width), (rect[1], height)))
    x1, y1 = (int(np.clip(np.floor((v + 0.5) * scale) + 1, 0, n)) for v, n in ((rect[2], width), (rect[3], height)))
    cleared[y0:y1, x0:x1] = 0
    return cleared


def display_placement(layer, scale: float) -> dict:
    """``scale`` and ``translate`` (last two axes) of the display layer over ``layer``."""
    box_scale = np.asarray(layer.scale[-2:], dtype=float)
    box_translate = np.asarray(layer.translate[-2:], dtype=float)
    return {"scale": list(box_scale / scale), "translate": list(box_translate + box_scale * (0.5 / scale - 0.5))}


def display_picture(annotation: Annotation, size, colors: dict) -> tuple[np.ndarray, float]:
    """The picture of ``annotation``'s boxes on an image of ``size``, and its scale."""
    scale = display_scale(size)
    edge = box_colors.edge_colors(list(annotation.labels), colors) if len(annotation) else np.zeros((0, 4))
    return draw_outlines(annotation.boxes, edge, size, scale), scale


def display_layer_data(annotation: Annotation, size, colors: dict, name: str, display_id: str) -> tuple:
    """A napari ``(data, kwargs, "image")`` tuple drawing ``annotation``'s boxes on an unscaled image."""
    picture, scale = display_picture(annotation, size, colors)
    return (picture, {"name": name, "rgb": True, "scale": [1 / scale] * 2,
                      "translate": [0.5 / scale - 0.5] * 2, "blending": "translucent",
                      "metadata": {conventions.BOX_DISPLAY: display_id}}, "image")


def display_name(layer_name: str) -> str:
    return f"{layer_name} (all boxes, view only)"


def new_display_id() -> str:
    return uuid.uuid4().hex


def find_display(viewer, layer):
    """The display layer drawing for box layer ``layer`` in ``viewer``, or None."""
    display_id = layer.metadata.get(conventions.DISPLAY_ID)
    if not display_id:
        return None
    for candidate in viewer.layers:
        if candidate.metadata.get(conventions.BOX_DISPLAY) == display_id:
            return candidate
    return None


class HeldBoxes:
    """Every image's boxes of a box layer that shows only a window of them, before a viewer pages it
    (the reader makes the layers; :func:`~napari_faster_rcnn.layers.slice_view.attach_when_added` hands them to a
    :class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes` once the layer is in a viewer)."""

    def __init__(self, annotations):
        self.annotations = list(annotations)

    def all_annotations(self) -> list[Annotation]:
        return list(self.annotations)

    def disconnect(self, restore: bool = False) -> None:
        """Nothing to stop (the layer is not paged yet)."""


def extent(annotation: Annotation) -> tuple[int, int]:
    """(height, width) reaching every box (when the image's size is not known)."""
    if len(annotation) == 0:
        return (1, 1)
    return (int(np.ceil(annotation.boxes[:, 3].max())) + 1, int(np.ceil(annotation.boxes[:, 2].max())) + 1)
