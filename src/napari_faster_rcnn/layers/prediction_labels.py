"""Predictions become labels: calibrating the score and NMS thresholds on a labels layer (in a worker,
:class:`CalibrationJob`), saving the thresholds beside the predictions, and accepting predictions
into a box layer as labels (on a stack, marking the planes accepted on as labeled).

No Qt here.
"""


from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.stack_planes import plane_index
from napari_faster_rcnn.core.prediction.stacks import join_planes
from napari_faster_rcnn.core.prediction.thresholds import (
    accept_predictions,
    save_thresholds,
)
from napari_faster_rcnn.layers import box_colors, conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.evaluation_layers import image_names, page_names, pair_images
from napari_faster_rcnn.layers.folder_pages import folder_store
from napari_faster_rcnn.layers.paging_registry import paging_model
from napari_faster_rcnn.layers.predictions import (
    StackPredictions,
    prediction_pages,
    put_stack_boxes,
    stack_layer_annotation,
)
from napari_faster_rcnn.layers.stack_labeling import (
    is_stack_layer,
    mark_planes,
    stack_store,
)

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
        return page_names(sources, [] if every else conventions.annotation_paths(layer.metadata),
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
    model = prediction_pages(predictions_layer)
    model = model if isinstance(model, StackPredictions) else None
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
    layer.metadata[conventions.CLASS_COLORS] = box_colors.class_colors(classes, layer.metadata.get(conventions.CLASS_COLORS))
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
