"""Predictions in the viewer: raw detections behind a layer, tuning them, and the layers that show them.
(Pairing two layers' images and the evaluation marks are :mod:`.evaluation_layers`; calibrating
thresholds and accepting predictions as labels are :mod:`.prediction_labels`.)

Where raw detections live
    A predictions layer that can be tuned is paged by a :class:`PredictionPages`
    (a display-only :class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes`): it holds every image's
    raw detections (``.detections``, a :class:`~napari_faster_rcnn.core.prediction.thresholds.DetectionSet`;
    ``.raw`` as annotations), the current :class:`~napari_faster_rcnn.core.prediction.thresholds.Thresholds`
    (``.thresholds``, mirrored in ``layer.metadata["thresholds"]``) and every
    image's filtered detections (``.annotations``), of which the layer shows
    the current image's. :func:`prediction_pages` finds it for a layer;
    :func:`tune` makes one for any predictions layer (a folder of predictions
    opened by the reader: its boxes become the raw detections), and
    :func:`add_prediction_layer` makes a new layer from raw detections (for
    prediction). Saving the layer writes the filtered boxes, one file per
    image, and ``thresholds.json`` beside them.

Stacks (time-lapse, z stacks)
    A stack's predictions layer is a stack box layer (see
    :func:`~napari_faster_rcnn.layers.conventions.stack_shapes_layer_data`): each box carries its
    plane, and napari shows a plane's boxes with the dims slider. :class:`StackPredictions` holds
    the raw detections of every plane predicted (:func:`add_stack_prediction_layer`) and puts the
    boxes that pass the thresholds into the layer, so "Tune predictions" works on it as on a folder's.
    Saving writes the stack's one file with ``planes`` and no ``labeled_planes``. Accepting
    predictions into the stack's box layer (:func:`~.prediction_labels.accept_as_labels`) marks the planes accepted on
    as labeled (:func:`~napari_faster_rcnn.layers.stack_labeling.mark_planes`), with or without boxes:
    every plane predicted, or with ``selected_only`` the planes of the selected boxes.

No Qt here.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.prediction.stacks import join_planes
from napari_faster_rcnn.core.prediction.thresholds import (
    KEEP_ALL,
    DetectionSet,
    Thresholds,
    load_thresholds,
)
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.paging_registry import keep_with_layer, paging_model
from napari_faster_rcnn.layers.slice_view import SliceBoxes
from napari_faster_rcnn.layers.stack_labeling import (
    current_plane,
    is_stack_layer,
    stack_annotation,
)


class PredictionPages(SliceBoxes):
    """Raw detections and thresholds behind a predictions layer, paged one image at a time.

    Parameters
    ----------
    viewer, layer
        As for :class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes`; ``layer`` is a predictions layer.
    raw
        One annotation with scores per image: the detections before thresholds.
    thresholds
        What passes to the layer.
    """

    def __init__(self, viewer, layer, raw: Sequence[Annotation], thresholds: Thresholds):
        self.detections = DetectionSet(raw)
        self.thresholds = thresholds
        layer.metadata[conventions.THRESHOLDS] = thresholds.to_dict()
        super().__init__(viewer, layer, self.detections.filtered(thresholds), editable=False)
        keep_with_layer(layer, self)

    @property
    def raw(self) -> list[Annotation]:
        """Every image's raw detections."""
        return self.detections.annotations

    def preview(self, thresholds: Thresholds) -> None:
        """Filter and show the current image alone (fast, for a slider being dragged)."""
        index = self.current if self.current is not None else self.viewer_index()
        self.annotations[index] = self.detections.filtered_image(index, thresholds)
        self.show(index)

    def apply(self, thresholds: Thresholds, filtered: Sequence[Annotation] | None = None) -> None:
        """Filter every image at once (or take ``filtered``, every image's raw detections filtered
        with ``thresholds`` elsewhere) and show the current one."""
        self.thresholds = thresholds
        self.layer.metadata[conventions.THRESHOLDS] = thresholds.to_dict()
        self.annotations = list(filtered) if filtered is not None else self.detections.filtered(thresholds)
        self.refresh()

    def counts(self) -> dict[str, int]:
        """Boxes kept and raw, in the current image and in all images."""
        index = self.viewer_index()  # also right while the dims slider's other listeners run first
        return {
            "kept": len(self.annotations[index]) if self.annotations else 0,
            "raw": len(self.raw[index]) if self.raw else 0,
            "kept_total": sum(len(a) for a in self.annotations),
            "raw_total": self.detections.size,
        }


class StackPredictions:
    """Raw detections and thresholds behind a stack's predictions layer (see the module docstring).

    It answers as :class:`PredictionPages` does (``detections``, ``raw``, ``thresholds``,
    ``annotations``, :meth:`preview`, :meth:`apply`, :meth:`counts`), per plane rather than per image.

    Parameters
    ----------
    viewer, layer
        ``layer`` is a stack's predictions layer (its metadata names ``plane_dims``).
    raw
        One annotation with scores per plane predicted: the detections before thresholds.
    planes
        The leading coordinates of each of those planes.
    thresholds
        What passes to the layer.
    """

    unit = "plane"

    def __init__(self, viewer, layer, raw: Sequence[Annotation], planes: Sequence, thresholds: Thresholds):
        self.viewer, self.layer = viewer, layer
        self.plane_dims = int(layer.metadata[conventions.PLANE_DIMS])
        self.planes = [tuple(int(v) for v in plane) for plane in planes]
        self.detections = DetectionSet(raw)
        self.thresholds = thresholds
        self.annotations = self.detections.filtered(thresholds)
        layer.metadata[conventions.THRESHOLDS] = thresholds.to_dict()
        _STACK_MODELS[layer] = self
        self.show()

    @property
    def raw(self) -> list[Annotation]:
        """Every plane's raw detections."""
        return self.detections.annotations

    def plane_index(self) -> int | None:
        """The position in :attr:`planes` of the plane the viewer shows (None: not predicted)."""
        plane = current_plane(self.viewer, self.layer)
        return self.planes.index(plane) if plane in self.planes else None

    def annotation(self) -> Annotation:
        """The boxes that pass, of every plane, as the stack's one annotation (with ``planes``)."""
        return join_planes(self.annotations, self.planes, plane_dims=self.plane_dims,
                           classes=self.layer.metadata.get(conventions.CLASSES))

    def show(self) -> None:
        """Put the boxes that pass into the layer."""
        put_stack_boxes(self.layer, self.annotation())

    def preview(self, thresholds: Thresholds) -> None:
        """Filter the plane shown again (fast, for a slider being dragged) and show it."""
        index = self.plane_index()
        if index is None:
            return
        self.annotations[index] = self.detections.filtered_image(index, thresholds)
        self.show()

    def apply(self, thresholds: Thresholds, filtered: Sequence[Annotation] | None = None) -> None:
        """Filter every plane at once (or take ``filtered``, as :meth:`PredictionPages.apply`)."""
        self.thresholds = thresholds
        self.layer.metadata[conventions.THRESHOLDS] = thresholds.to_dict()
        self.annotations = list(filtered) if filtered is not None else self.detections.filtered(thresholds)
        self.show()

    def counts(self) -> dict[str, int]:
        """Boxes kept and raw, in the plane shown and in all planes."""
        index = self.plane_index()
        return {
            "kept": len(self.annotations[index]) if index is not None else 0,
            "raw": len(self.raw[index]) if index is not None else 0,
            "kept_total": sum(len(a) for a in self.annotations),
            "raw_total": self.detections.size,
        }


_STACK_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def put_stack_boxes(layer, annotation: Annotation) -> None:
    """Replace the boxes of a stack's box or predictions layer with ``annotation``'s (with
    ``planes``), built as :func:`~napari_faster_rcnn.layers.conventions.stack_shapes_layer_data`
    builds a stack layer; the layer's labeled planes and other metadata stay."""
    dims = int(layer.metadata[conventions.PLANE_DIMS])
    predictions = conventions.is_predictions(layer)
    sizes = layer.metadata.get(conventions.IMAGE_SIZES)
    vertices, kwargs, _ = conventions.stack_shapes_layer_data(
        annotation, dims, name=layer.name, image_size=sizes[0] if sizes else None, predictions=predictions,
        classes=list(layer.metadata.get(conventions.CLASSES) or []) or None,
        colors=layer.metadata.get(conventions.CLASS_COLORS))
    labeled = layer.metadata.get(conventions.LABELED_PLANES)
    defaults = layer.feature_defaults.copy()
    with layer.events.blocker_all():
        layer.selected_data = set()
        layer.data = []
        if vertices:
            layer.add(vertices, shape_type="rectangle", edge_color=kwargs["edge_color"])
        layer.features = kwargs["features"]
        layer.feature_defaults = defaults
    layer.metadata[conventions.CLASSES] = kwargs["metadata"][conventions.CLASSES]
    layer.metadata[conventions.CLASS_COLORS] = kwargs["metadata"][conventions.CLASS_COLORS]
    layer.metadata[conventions.LABELED_PLANES] = [] if predictions else labeled or []
    layer.refresh()


def stack_layer_annotation(layer) -> Annotation:
    """The one annotation (boxes with ``planes``, labeled planes) of a stack's box or predictions layer."""
    model = _STACK_MODELS.get(layer)
    if model is not None:
        return model.annotation()
    return stack_annotation(layer)  # a box layer paged plane by plane, or one holding every box


def prediction_pages(layer) -> PredictionPages | StackPredictions | None:
    """The :class:`PredictionPages` (or, for a stack, :class:`StackPredictions`) behind ``layer``, or None."""
    if layer in _STACK_MODELS:
        return _STACK_MODELS[layer]
    model = paging_model(layer)
    return model if isinstance(model, PredictionPages) else None


def tune(viewer, layer) -> PredictionPages:
    """The :class:`PredictionPages` of a predictions layer, made on first use.

    A layer that holds all its boxes (a folder of predictions opened by the
    reader) hands them over as raw detections; the thresholds start from
    ``layer.metadata["thresholds"]``, else from ``thresholds.json`` beside its
    files, else keep everything.
    """
    pages = prediction_pages(layer)
    if pages is not None:
        return pages
    if is_stack_layer(layer):  # its boxes, plane by plane, become the raw detections
        stack = stack_annotation(layer)
        pager = paging_model(layer)
        if pager is not None:  # read from a file: paged plane by plane until now; the planes' boxes go back
            pager.disconnect(restore=True)  # into the layer, which StackPredictions shows from now on
        planes = [tuple(plane) for plane in np.unique(stack.planes, axis=0).tolist()]
        return StackPredictions(viewer, layer, [stack.on_plane(plane) for plane in planes], planes,
                                _initial_thresholds(layer))
    raw = layer_annotations(layer)
    other = paging_model(layer)
    if other is not None:
        other.disconnect(restore=False)
    thresholds = _initial_thresholds(layer)
    return PredictionPages(viewer, layer, raw, thresholds)


def _initial_thresholds(layer) -> Thresholds:
    saved = layer.metadata.get(conventions.THRESHOLDS)
    if saved:
        return Thresholds.from_dict(dict(saved))
    files = conventions.annotation_paths(layer.metadata)
    folders = {path.parent for path in files if path is not None}
    if len(folders) == 1:
        found = load_thresholds(folders.pop())
        if found is not None:
            return found
    return KEEP_ALL


def add_prediction_layer(
    viewer,
    raw: Sequence[Annotation],
    thresholds: Thresholds,
    *,
    name: str,
    classes: Sequence[str] | None = None,
    image_sizes: Sequence | None = None,
    metadata: dict | None = None,
    stacked: bool | None = None,
    colors: dict | None = None,
):
    """Add a predictions layer over raw detections (one per image) and return it.

    ``metadata`` should name :data:`~napari_faster_rcnn.layers.conventions.SOURCE_IMAGES` (and
    :data:`~napari_faster_rcnn.layers.conventions.ANNOTATION_FILES` where they are to be saved). A stack
    layer is made for several images, a 2-D one for one, unless ``stacked``
    says otherwise. ``colors`` (class name -> colour) are kept for their classes.
    """
    from napari.layers import Layer

    empty = [Annotation(np.zeros((0, 4)), [], np.zeros(0)) for _ in raw]
    known = list(classes or []) + [label for a in raw for label in a.labels]
    data, kwargs, kind = conventions.shapes_layer_data(
        empty, stacked=len(raw) != 1 if stacked is None else stacked, name=name,
        classes=list(dict.fromkeys(known)), colors=colors, predictions=True, image_sizes=image_sizes,
        metadata=metadata,
    )
    layer = Layer.create(data, kwargs, kind)
    # paged before it joins the viewer, so widgets that see it arrive find its raw detections
    PredictionPages(viewer, layer, raw, thresholds)
    return viewer.add_layer(layer)


def add_stack_prediction_layer(
    viewer,
    raw: Sequence[Annotation],
    planes: Sequence,
    plane_dims: int,
    thresholds: Thresholds,
    *,
    name: str,
    classes: Sequence[str] | None = None,
    image_size=None,
    metadata: dict | None = None,
    colors: dict | None = None,
):
    """Add a stack's predictions layer over raw detections (one per plane, on ``planes``) and return it.

    ``metadata`` should name the stack's file in :data:`~napari_faster_rcnn.layers.conventions.SOURCE_IMAGES`.
    """
    from napari.layers import Layer

    known = list(dict.fromkeys([*(classes or []), *(label for a in raw for label in a.labels)]))
    empty = Annotation(classes=known, planes=np.zeros((0, plane_dims), dtype=np.int64))
    data, kwargs, kind = conventions.stack_shapes_layer_data(
        empty, plane_dims, name=name, image_size=image_size, metadata=metadata, predictions=True, classes=known,
        colors=colors)
    layer = Layer.create(data, kwargs, kind)
    StackPredictions(viewer, layer, raw, planes, thresholds)  # before it joins the viewer, as add_prediction_layer
    return viewer.add_layer(layer)
