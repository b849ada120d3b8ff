"""Predictions in the viewer: raw detections behind a layer, evaluation marks, accepting as labels.

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
    predictions into the stack's box layer (:func:`accept_as_labels`) marks the planes accepted on
    as labeled (:func:`~napari_faster_rcnn.layers.stack_labeling.mark_planes`), with or without boxes:
    every plane predicted, or with ``selected_only`` the planes of the selected boxes.

No Qt here.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.labeling import plane_index
from napari_faster_rcnn.core.prediction.stacks import join_planes
from napari_faster_rcnn.core.prediction.thresholds import (
    KEEP_ALL,
    DetectionSet,
    Thresholds,
    accept_predictions,
    load_thresholds,
    save_thresholds,
)
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.folder_pages import folder_store
from napari_faster_rcnn.layers.slice_view import SliceBoxes, keep_with_layer, paging_model
from napari_faster_rcnn.layers.stack_labeling import (
    current_plane,
    is_stack_layer,
    mark_planes,
    stack_annotation,
    stack_store,
)

#: ``metadata[LAYER_ROLE]`` of the layers that mark an evaluation's results
EVALUATION = "evaluation"


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


# --- pairing images of two layers ----------------------------------------------------


def image_names(layer) -> list[str]:
    """The file name stem of each image of a box layer (its source image, else its annotation file)."""
    return _image_names(layer.metadata.get(conventions.SOURCE_IMAGES) or [],
                        conventions.annotation_paths(layer.metadata), layer.metadata.get(conventions.SOURCE_PLANES))


def _image_names(sources, files, planes=None) -> list[str]:
    """Each image's file name stem; a page that is a stack's plane (see :data:`~.conventions.SOURCE_PLANES`)
    ``movie[3]`` (``[t,z]``), so that the pages of two layers pair by file and plane."""
    count = max(len(sources), len(files))
    planes = list(planes or [])
    names = []
    for index in range(count):
        plane = planes[index] if index < len(planes) else None
        if index < len(sources) and sources[index] and plane is not None:
            names.append(f"{os.path.splitext(os.path.basename(sources[index]))[0]}[{','.join(map(str, plane))}]")
        elif index < len(sources) and sources[index]:
            names.append(os.path.splitext(os.path.basename(sources[index]))[0])  # Path(...).stem, 5x faster
        elif index < len(files) and files[index] is not None:
            names.append(files[index].stem)
        else:
            names.append(f"#{index}")
    return names


def pair_images(first, second) -> list[tuple[str, int, int]]:
    """``(name, index in first, index in second)`` of the images two layers share, by file name."""
    second_index = {name: i for i, name in enumerate(image_names(second))}
    pairs = [(name, i, second_index[name]) for i, name in enumerate(image_names(first)) if name in second_index]
    return sorted(pairs)


def evaluation_inputs(ground_layer, predicted_layer) -> dict:
    """What Evaluate needs of two layers, for the images they share (by file name, see :func:`pair_images`).

    Returns a dict with ``pairs``, every image's annotations of each layer
    (``ground``, ``predicted``), and for the shared images in pair order the
    ``ground_truths`` and ``predictions`` (each carrying its layer's class
    list, so that integer labels of one side resolve through the other's
    names), the ``image_sizes`` (None where the layer does not know them) and
    the ``names``.
    """
    if is_stack_layer(ground_layer) or is_stack_layer(predicted_layer):
        return _stack_evaluation_inputs(ground_layer, predicted_layer)
    pairs = pair_images(ground_layer, predicted_layer)
    ground, predicted = layer_annotations(ground_layer), layer_annotations(predicted_layer)

    def carrying(annotation, layer):
        classes = list(layer.metadata.get(conventions.CLASSES) or []) or annotation.classes
        return Annotation(annotation.boxes, annotation.labels, annotation.scores, classes)

    sizes = ground_layer.metadata.get(conventions.IMAGE_SIZES) or predicted_layer.metadata.get(conventions.IMAGE_SIZES)
    sizes_of = ground_layer.metadata.get(conventions.IMAGE_SIZES) is not None
    image_sizes = []
    for _, g, p in pairs:
        index = g if sizes_of else p
        image_sizes.append(tuple(sizes[index]) if sizes is not None and index < len(sizes) else None)
    return {
        "pairs": pairs,
        "ground": ground,
        "predicted": predicted,
        "ground_truths": [carrying(ground[g], ground_layer) for _, g, _ in pairs],
        "predictions": [carrying(predicted[p], predicted_layer) for _, _, p in pairs],
        "image_sizes": image_sizes,
        "names": [name for name, _, _ in pairs],
    }


def _stack_evaluation_inputs(ground_layer, predicted_layer) -> dict:
    """:func:`evaluation_inputs` of a stack's box layer and its predictions: one pair per plane a
    person LABELED (``NAME[t]``), as :func:`~napari_faster_rcnn.core.evaluation.pairing.labeled_planes_only`
    pairs them for the ``evaluate`` command; predictions on unlabeled planes are left out (``notes``
    says how many). ``planes`` holds each pair's plane, for the marks."""
    from napari_faster_rcnn.core.evaluation.pairing import labeled_planes_only

    empty = {"pairs": [], "ground": [], "predicted": [], "ground_truths": [], "predictions": [], "image_sizes": [],
             "names": [], "planes": [], "notes": []}
    if not (is_stack_layer(ground_layer) and is_stack_layer(predicted_layer)):
        return empty
    names = image_names(ground_layer)
    if names != image_names(predicted_layer):
        return empty
    truth, predicted = stack_layer_annotation(ground_layer), stack_layer_annotation(predicted_layer)
    truth.classes = list(ground_layer.metadata.get(conventions.CLASSES) or []) or truth.classes
    predicted.classes = list(predicted_layer.metadata.get(conventions.CLASSES) or []) or predicted.classes
    if predicted.scores is None:
        predicted.scores = np.ones(len(predicted))
    sizes = ground_layer.metadata.get(conventions.IMAGE_SIZES) or predicted_layer.metadata.get(conventions.IMAGE_SIZES)
    size = tuple(sizes[0]) if sizes else None
    notes: list[str] = []
    plane_names, truths, predictions, image_sizes = labeled_planes_only(
        [names[0]], [truth], [predicted], [size], [None], notes)
    pairs = [(name, k, k) for k, name in enumerate(plane_names)]
    return {
        "pairs": pairs,
        "ground": truths,
        "predicted": predictions,
        "ground_truths": truths,
        "predictions": predictions,
        "image_sizes": image_sizes,
        "names": plane_names,
        "planes": [tuple(plane) for plane in truth.labeled_planes.tolist()],
        "notes": notes,
    }


# --- calibrating thresholds on labels ---------------------------------------------------


class CalibrationJob:
    """What :func:`calibrate_predictions` needs, taken from the layers on the main thread (lists of
    what the layers hold: no work on them there); :meth:`run` pairs the images, calibrates and
    filters every image with the result, in any thread. It holds the annotations themselves: a
    labeling session or an edit replaces an image's annotation with a new one, never changes one
    in place, so later edits in the viewer do not reach a running job."""

    def __init__(self, names: tuple, raw, labels, label_classes, sizes, objective: str, every_raw=None,
                 layer_names: tuple = ("predictions", "labels")):
        self.names, self.raw, self.labels, self.label_classes = names, raw, labels, label_classes
        self.sizes, self.objective, self.layer_names = sizes, objective, layer_names
        self.every_raw = every_raw  # every image's raw detections, to filter with the result (or None)
        self.filtered: list[Annotation] | None = None  # ... filtered, once run

    @property
    def images(self) -> int:
        """How many images the calibration will use: those both layers share, with labels (quick)."""
        return sum(1 for _, _, g in self.shared() if len(self.labels[g]))

    def shared(self) -> list[tuple[str, int, int]]:
        """``(name, prediction index, label index)`` of the images both layers share (by file name)."""
        predicted_names, label_names = self.names
        label_index = {name: i for i, name in enumerate(label_names)}
        return sorted((name, i, label_index[name]) for i, name in enumerate(predicted_names) if name in label_index)

    def run(self):
        """The :class:`~napari_faster_rcnn.core.prediction.calibration.Calibration`.

        Raises
        ------
        ValueError
            When the layers share no labeled image, or the core refuses the input.
        """
        from napari_faster_rcnn.core.prediction.calibration import calibrate

        shared = self.shared()
        pairs = [(name, p, g) for name, p, g in shared if len(self.labels[g])]
        if not pairs:
            raise ValueError(f"{self.layer_names[0]!r} and {self.layer_names[1]!r} share no labeled image "
                             "(paired by file name): label some of the predicted images first")
        ground = [Annotation(self.labels[g].boxes, self.labels[g].labels,
                             classes=self.label_classes or self.labels[g].classes) for _, _, g in pairs]
        sizes = self.sizes
        image_sizes = [tuple(sizes[g]) if sizes is not None and g < len(sizes) else None for _, _, g in pairs]
        result = calibrate(ground, [self.raw[p] for _, p, _ in pairs], self.objective, image_sizes=image_sizes)
        if self.every_raw is not None:  # every image filtered here too, not on the main thread
            from napari_faster_rcnn.core.prediction.thresholds import DetectionSet

            self.filtered = DetectionSet(self.every_raw).filtered(result.thresholds)
        if len(shared) > len(pairs):
            result.notes.append(f"{len(shared) - len(pairs)} shared image(s) without labels left out (not labeled yet)")
        return result


def calibration_job(predictions_layer, labels_layer, objective: str = "f1") -> CalibrationJob:
    """The inputs of a calibration of ``predictions_layer`` on the labels of ``labels_layer``
    (see :func:`calibrate_predictions`), taken now (main thread); :meth:`CalibrationJob.run` does the work."""
    pages = prediction_pages(predictions_layer)
    raw = list(pages.raw) if pages is not None else layer_annotations(predictions_layer)
    model = paging_model(labels_layer)
    labels = list(model.all_annotations()) if model is not None else layer_annotations(labels_layer)

    def names_of(layer):  # (the annotation files only when an image has no file: 2,000 paths cost 25 ms)
        sources = list(layer.metadata.get(conventions.SOURCE_IMAGES) or [])
        every = sources and all(sources)
        return _image_names(sources, [] if every else conventions.annotation_paths(layer.metadata),
                            layer.metadata.get(conventions.SOURCE_PLANES))

    label_classes = list(labels_layer.metadata.get(conventions.CLASSES) or []) or None
    sizes = labels_layer.metadata.get(conventions.IMAGE_SIZES)
    return CalibrationJob((names_of(predictions_layer), names_of(labels_layer)), raw, labels, label_classes,
                          None if sizes is None else list(sizes), objective,
                          every_raw=raw if pages is not None else None,
                          layer_names=(predictions_layer.name, labels_layer.name))


def calibrate_predictions(predictions_layer, labels_layer, objective: str = "f1"):
    """Thresholds of a predictions layer calibrated on the labels of a box layer (same images, by file name).

    The raw detections behind ``predictions_layer`` (see :func:`tune`) are
    matched to the labels of the images both layers share; images without any
    label are taken as not labeled yet and left out. Returns the
    :class:`~napari_faster_rcnn.core.prediction.calibration.Calibration` (its
    ``notes`` say what was left out); the layer is not changed. The same as
    ``calibration_job(...).run()`` (the widget runs the job in a worker).

    Raises
    ------
    ValueError
        When the layers share no labeled image, or the core refuses the input.
    """
    return calibration_job(predictions_layer, labels_layer, objective).run()


def save_layer_thresholds(predictions_layer) -> Path | None:
    """Write the layer's current thresholds as ``thresholds.json`` into the folder of its prediction
    files, when they lie in one folder; returns the file written, or None."""
    pages = prediction_pages(predictions_layer)
    files = conventions.annotation_paths(predictions_layer.metadata)
    folders = {path.parent for path in files if path is not None}
    if pages is None or len(folders) != 1:
        return None
    return save_thresholds(folders.pop(), pages.thresholds)


# --- accepting predictions as labels ----------------------------------------------------


def accept_as_labels(predictions_layer, labels_layer, selected_only: bool = False) -> int:
    """Copy the predictions that pass the thresholds into the labels of the same images.

    With ``selected_only``, only the boxes selected in the predictions layer
    (on the image shown) are copied. Boxes already labeled are skipped (see
    :func:`~napari_faster_rcnn.core.prediction.thresholds.accept_predictions`). Returns how many were added.
    """
    if is_stack_layer(predictions_layer) or is_stack_layer(labels_layer):
        return _accept_on_stack(predictions_layer, labels_layer, selected_only)
    pairs = pair_images(predictions_layer, labels_layer)
    if not pairs:
        raise ValueError(f"{predictions_layer.name!r} and {labels_layer.name!r} share no image (paired by file name)")
    predicted = layer_annotations(predictions_layer)
    if selected_only:
        pages = paging_model(predictions_layer)
        current = pages.current if pages is not None else None
        selected = _selected_by_image(predictions_layer, current, len(predicted))
        predicted = [a.select(sorted(selected.get(i, ()))) for i, a in enumerate(predicted)]
    classes = list(labels_layer.metadata.get(conventions.CLASSES) or []) or None
    model = paging_model(labels_layer)
    labels = model.all_annotations() if model is not None else layer_annotations(labels_layer)
    added = 0
    for _, source, target in pairs:
        if len(predicted[source]) == 0:
            continue
        labels[target], count = accept_predictions(labels[target], predicted[source], classes)
        added += count
    if added:
        _put_labels(labels_layer, model, labels)
    store = folder_store(labels_layer)
    if store is not None:  # a folder with stacks' planes: the pages accepted on become labeled, as a stack's planes
        store.mark([target for _, _, target in pairs])
        events = getattr(model, "events", None)
        if events is not None:
            events.changed()
    return added


def _accept_on_stack(predictions_layer, labels_layer, selected_only: bool) -> int:
    """:func:`accept_as_labels` for a stack: plane by plane, and the planes accepted on become labeled."""
    if not (is_stack_layer(predictions_layer) and is_stack_layer(labels_layer)):
        raise ValueError(f"{predictions_layer.name!r} and {labels_layer.name!r}: accept a stack's predictions into "
                         "the box layer of the same stack")
    if image_names(predictions_layer) != image_names(labels_layer):
        raise ValueError(f"{predictions_layer.name!r} and {labels_layer.name!r} are not of the same stack "
                         f"({', '.join(image_names(predictions_layer))} and {', '.join(image_names(labels_layer))})")
    predicted = stack_layer_annotation(predictions_layer)
    model = _STACK_MODELS.get(predictions_layer)
    planes = list(model.planes) if model is not None else [tuple(p) for p in np.unique(predicted.planes, axis=0).tolist()]
    if selected_only:  # the layer holds every plane's boxes, in the annotation's order
        predicted = predicted.select(sorted(int(i) for i in predictions_layer.selected_data))
        planes = [tuple(p) for p in np.unique(predicted.planes, axis=0).tolist()]
    labels = stack_layer_annotation(labels_layer)
    classes = list(labels_layer.metadata.get(conventions.CLASSES) or []) or None
    kept = [plane for plane in np.unique(labels.planes, axis=0).tolist() if tuple(plane) not in planes]
    per_plane, where, added = [labels.on_plane(p) for p in kept], [tuple(p) for p in kept], 0
    for plane in planes:
        merged, count = accept_predictions(labels.on_plane(plane), predicted.on_plane(plane), classes)
        per_plane.append(merged)
        where.append(plane)
        added += count
    if added:
        joined = join_planes(per_plane, where, plane_dims=labels.planes.shape[1],
                             classes=list(dict.fromkeys([*(classes or []), *(n for a in per_plane for n in a.labels)])))
        store = stack_store(labels_layer)
        if store is None:  # a layer holding every plane's boxes
            put_stack_boxes(labels_layer, joined)
        else:  # paged plane by plane: the planes accepted on go into the store
            per_index = list(store.annotations)
            for annotation, plane in zip(per_plane, where):
                per_index[plane_index(plane, store.shape)] = annotation
            _put_labels(labels_layer, paging_model(labels_layer), per_index)
    mark_planes(labels_layer, planes)
    return added


def _selected_by_image(layer, current: int | None, count: int) -> dict[int, set[int]]:
    """Selected shapes of a layer as ``{image: {box index within the image}}``."""
    if current is not None:  # a paged layer shows one image, in its annotation's order
        return {current: set(layer.selected_data)}
    selected: dict[int, set[int]] = {}
    if layer.ndim < 3:
        return {0: set(layer.selected_data)}
    from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes

    _, index = rectangles_to_boxes(layer.data)
    order = np.argsort(index, kind="stable")
    position = np.empty(len(index), dtype=np.int64)
    starts = np.searchsorted(index[order], np.arange(count))
    position[order] = np.arange(len(index)) - starts[index[order]]
    for shape in layer.selected_data:
        selected.setdefault(int(index[shape]), set()).add(int(position[shape]))
    return selected


def _put_labels(layer, model, labels: list[Annotation]) -> None:
    classes = list(dict.fromkeys([*(layer.metadata.get(conventions.CLASSES) or []), *(n for a in labels for n in a.labels)]))
    layer.metadata[conventions.CLASSES] = classes
    layer.metadata[conventions.CLASS_COLORS] = conventions.class_colors(classes, layer.metadata.get(conventions.CLASS_COLORS))
    if model is not None:
        model.annotations = labels
        model.refresh()
        return
    stacked = layer.ndim >= 3
    data, kwargs, _ = conventions.shapes_layer_data(labels, stacked=stacked, name=layer.name, classes=classes,
                                          colors=layer.metadata[conventions.CLASS_COLORS], predictions=False)
    with layer.events.blocker_all():
        layer.selected_data = set()
        layer.data = []
        if data:
            layer.add(data, shape_type="rectangle", edge_color=kwargs["edge_color"])
        layer.features = kwargs["features"]
    layer.refresh()


# --- evaluation marks -------------------------------------------------------------------


MARKS = {  # name suffix, colour
    "true positives": "#2ecc40",
    "false positives": "#ff2d2d",
    "missed": "#ffdc00",
}


def mark_annotations(result, pairs, predicted, ground, n_predicted: int, n_ground: int) -> dict[str, list[Annotation]]:
    """Per image of each layer, the true and false positives and the missed ground truth of a
    :class:`~napari_faster_rcnn.core.evaluation.metrics.VOCResult` computed over ``pairs`` (see :func:`pair_images`)."""
    empty = Annotation(np.zeros((0, 4)), [])
    marks = {kind: [empty] * (n_ground if kind == "missed" else n_predicted) for kind in MARKS}
    for k, (_, g, p) in enumerate(pairs):
        hit = result.true_positive[k]
        labels = result.prediction_labels[k]
        marks["true positives"][p] = Annotation(predicted[p].boxes[hit], [labels[i] for i in np.flatnonzero(hit)])
        marks["false positives"][p] = Annotation(predicted[p].boxes[~hit], [labels[i] for i in np.flatnonzero(~hit)])
        missed = ~result.matched[k]
        missed_labels = [result.ground_truth_labels[k][i] for i in np.flatnonzero(missed)]
        marks["missed"][g] = Annotation(ground[g].boxes[missed], missed_labels)
    return marks


def show_stack_marks(viewer, kind: str, annotations: list[Annotation], planes: Sequence, source_layer, name: str,
                     existing=None):
    """:func:`show_marks` on a stack: the marks of each plane evaluated (``annotations[i]`` on
    ``planes[i]``) in a display-only stack layer over the source layer's stack."""
    from napari.layers import Layer

    dims = int(source_layer.metadata[conventions.PLANE_DIMS])
    classes = list(dict.fromkeys(label for a in annotations for label in a.labels))
    colors = {label: MARKS[kind] for label in classes}
    joined = join_planes([Annotation(a.boxes, a.labels) for a in annotations], planes, plane_dims=dims,
                         classes=classes)
    if existing is not None and existing in viewer.layers and is_stack_layer(existing):
        existing.metadata[conventions.CLASS_COLORS] = colors
        existing.metadata[conventions.CLASSES] = classes
        put_stack_boxes(existing, joined)
        return existing
    keep = {key: source_layer.metadata[key] for key in (conventions.SOURCE_IMAGES, conventions.IMAGE_SIZES)
            if key in source_layer.metadata}
    sizes = keep.get(conventions.IMAGE_SIZES)
    data, kwargs, kind_name = conventions.stack_shapes_layer_data(
        joined, dims, name=name, image_size=sizes[0] if sizes else None, metadata=keep, predictions=False,
        classes=classes, colors=colors)
    kwargs["metadata"].update({conventions.LAYER_ROLE: EVALUATION, conventions.LABELED_PLANES: []})
    kwargs["edge_color"] = MARKS[kind]
    kwargs["opacity"] = 0.9
    kwargs["scale"], kwargs["translate"] = source_layer.scale, source_layer.translate
    layer = Layer.create(data, kwargs, kind_name)
    layer.text.visible = False
    return viewer.add_layer(layer)


def show_marks(viewer, kind: str, annotations: list[Annotation], source_layer, name: str, existing=None):
    """Show one kind of mark in a display-only paged layer (re-using ``existing`` when given)."""
    from napari.layers import Layer

    classes = list(dict.fromkeys(label for a in annotations for label in a.labels))
    colors = {label: MARKS[kind] for label in classes}
    pages = paging_model(existing) if existing is not None and existing in viewer.layers else None
    if pages is not None:
        existing.metadata[conventions.CLASS_COLORS] = colors
        pages.annotations = list(annotations)
        pages.refresh()
        return existing
    stacked = source_layer.ndim >= 3
    empty = [Annotation(np.zeros((0, 4)), []) for _ in annotations]
    keep = {key: source_layer.metadata[key] for key in (conventions.SOURCE_IMAGES, conventions.IMAGE_SIZES) if key in source_layer.metadata}
    data, kwargs, shape_type = conventions.shapes_layer_data(empty, stacked=stacked, name=name, predictions=False, metadata=keep)
    kwargs["metadata"].update({conventions.LAYER_ROLE: EVALUATION, conventions.CLASS_COLORS: colors, conventions.CLASSES: classes})
    kwargs["edge_width"] = source_layer.edge_width[0] * 1.5 if len(source_layer.edge_width) else kwargs["edge_width"]
    kwargs["edge_color"] = MARKS[kind]
    kwargs["opacity"] = 0.9
    kwargs["scale"], kwargs["translate"] = source_layer.scale, source_layer.translate  # on the source's image
    layer = Layer.create(data, kwargs, shape_type)
    layer.text.visible = False  # the colour says what a mark is; the predictions layer shows labels and scores
    keep_with_layer(layer, SliceBoxes(viewer, layer, annotations, editable=False))
    return viewer.add_layer(layer)
