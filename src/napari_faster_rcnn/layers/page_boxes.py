"""One page's boxes in a napari Shapes layer: drawing them fast and reading them back.

napari's Shapes layer does work proportional to *all* its shapes on every dims
step and every edit (measured with napari 0.9: 100,000 boxes take 19 s to
create and 0.7 s per step of the slider), so the paging models
(:class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes` and its kin) keep every
image's boxes in a list of :class:`~napari_faster_rcnn.core.data.annotations.Annotation`
and show only the current page's boxes in the layer, at the page's image index or
plane coordinates. Here: :func:`show_boxes`, the fast replace of a layer's contents;
:func:`rectangles_at`, a page's boxes as vertices; :func:`fit_text`, switching the
labels off for crowded pages; :func:`layer_shows`, whether a layer already shows a page;
:func:`read_boxes` and :func:`same_boxes`, reading a page back and comparing it.

No Qt here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, clip_boxes, rectangles_to_boxes
from napari_faster_rcnn.layers import box_colors, conventions


def show_boxes(layer, annotation: Annotation, index: int | None, colors: dict[str, str]) -> None:
    """Replace everything in ``layer`` with ``annotation``'s boxes, fast.

    ``index`` is the image's position in the stack (``None`` for a 2-D layer), or the
    leading coordinates (a tuple) of a plane of a stack read as data. Events are held back while data, features and colours change, and the
    layer refreshes once (about 20 ms for 100 boxes with napari 0.9 and bermuda).
    """
    vertices = rectangles_at(annotation.boxes, index)
    labels = list(annotation.labels)
    scores = annotation.scores if layer.metadata.get(conventions.LAYER_ROLE) == conventions.PREDICTIONS else None
    # An empty features table resets the defaults to None: new shapes would get no label, and
    # the label-coloured text fails on several None values. Keep the defaults across the replace.
    defaults = layer.feature_defaults.copy()
    if not conventions.text_fits(len(labels)):
        fit_text(layer, len(labels))  # before the new features: their labels would be laid out at once
    with layer.events.blocker_all(), layer.text.events.blocker_all(), refresh_held(layer):
        layer.selected_data = set()
        layer.data = []
        if labels:
            layer.add(list(vertices), shape_type="rectangle", edge_color=box_colors.edge_colors(labels, colors))
        layer.features = conventions.features_frame(labels, scores)
        layer.feature_defaults = defaults
    fit_text(layer, len(labels))  # (after the replace: labels switched back on are laid out for the new boxes)
    layer.refresh()


def rectangles_at(boxes: np.ndarray, at) -> np.ndarray:
    """Rectangle vertices of ``boxes``: 2-D (``at`` None), led by an image index (an int) or by a
    plane's leading coordinates (a tuple)."""
    if not isinstance(at, tuple):
        return boxes_to_rectangles(boxes, at) if at is not None else boxes_to_rectangles(boxes)
    flat = boxes_to_rectangles(boxes)
    lead = np.broadcast_to(np.asarray(at, dtype=np.float64), (len(flat), flat.shape[1], len(at)))
    return np.concatenate([lead, flat], axis=2)


def shape_leads(layer, depth: int) -> np.ndarray:
    """The first vertex's leading ``depth`` coordinates of every shape of ``layer``, rounded."""
    return np.rint(np.array([np.asarray(v)[0, :depth] for v in layer.data], dtype=np.float64)).reshape(-1, depth)


def fit_text(layer, count: int) -> None:
    """Switch the labels off for a page of more than :data:`~.conventions.TEXT_LIMIT` boxes, and back
    on for a smaller one when it was the count that switched them off (a person's choice stays: labels
    switched off stay off; labels switched on over the limit stay on while the pages are large)."""
    hidden = layer.metadata.get(conventions.TEXT_HIDDEN, False)
    if not conventions.text_fits(count):
        if layer.text.visible and not hidden:  # (visible and hidden: a person switched them on)
            layer.text.visible = False
            layer.metadata[conventions.TEXT_HIDDEN] = True
    elif hidden:
        layer.text.visible = True
        layer.metadata.pop(conventions.TEXT_HIDDEN, None)


def layer_shows(layer, annotation: Annotation, index: int | None) -> bool:
    """Whether ``layer`` holds exactly ``annotation``'s boxes as rectangles (at ``index`` for a stack),
    with their labels, scores (of predictions) and class colours."""
    if layer.nshapes != len(annotation) or len(layer.features) != len(annotation):
        return False
    if len(annotation) == 0:
        return True
    if any(kind != "rectangle" for kind in layer.shape_type):
        return False
    boxes, at = rectangles_to_boxes(layer.data)
    if isinstance(index, tuple):
        if layer.ndim != len(index) + 2 or np.any(shape_leads(layer, len(index)) != np.asarray(index)):
            return False
    elif (index is None) != (at is None) or (at is not None and np.any(at != index)):
        return False
    features = layer.features
    if "label" not in features or [str(label) for label in features["label"]] != list(annotation.labels):
        return False
    if layer.metadata.get(conventions.LAYER_ROLE) == conventions.PREDICTIONS:
        scores = np.ones(len(annotation)) if annotation.scores is None else annotation.scores
        if "score" not in features or not np.array_equal(np.asarray(features["score"], dtype=np.float64), scores):
            return False
    colors = layer.metadata.get(conventions.CLASS_COLORS, {})
    return bool(np.allclose(boxes, annotation.boxes, atol=1e-6)
                and np.allclose(layer.edge_color, box_colors.edge_colors(annotation.labels, colors)))


def refresh_held(layer):
    """Hold back the layer's own refreshes while its contents are replaced; the caller refreshes once.

    Setting ``data`` and adding shapes each refresh a Shapes layer (its slice, its
    thumbnail drawn shape by shape, its text), three times for one replace; napari's
    ``_block_refresh`` (private; napari 0.9 has it) holds them back. Without
    it the replace is only slower.
    """
    block = getattr(layer, "_block_refresh", None)
    return block() if callable(block) else contextlib.nullcontext()


def read_boxes(layer, sizes: tuple[int, int] | None, classes: Sequence[str], predictions: bool) -> Annotation:
    """The boxes in ``layer`` as one :class:`Annotation` (clipped to ``sizes`` when given)."""
    boxes, _ = rectangles_to_boxes(layer.data)
    if sizes is not None:
        boxes = clip_boxes(boxes, *sizes)
    features = layer.features
    labels = [str(v) for v in features["label"]] if "label" in features and len(features) == len(boxes) else ["object"] * len(boxes)
    scores = None
    if predictions:
        scores = np.asarray(features["score"], dtype=np.float64) if "score" in features else np.ones(len(boxes))
    return Annotation(boxes=boxes, labels=labels, scores=scores, classes=list(classes))


def same_boxes(a: Annotation, b: Annotation) -> bool:
    """Whether ``a`` and ``b`` hold the same boxes with the same labels (scores are not compared)."""
    return len(a) == len(b) and a.labels == b.labels and np.allclose(a.boxes, b.boxes, atol=1e-6)
