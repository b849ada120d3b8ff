"""Evaluation in the viewer: pairing the images (or a stack's planes) of a labels layer and a
predictions layer by file name, the inputs of an evaluation from two layers, and the layers that mark
its results (true positives, false positives, missed boxes) per image or plane.

No Qt here.
"""


from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.prediction.stacks import join_planes
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.paging_registry import keep_with_layer, paging_model
from napari_faster_rcnn.layers.predictions import put_stack_boxes, stack_layer_annotation
from napari_faster_rcnn.layers.slice_view import SliceBoxes
from napari_faster_rcnn.layers.stack_labeling import (
    is_stack_layer,
)

#: ``metadata[LAYER_ROLE]`` of the layers that mark an evaluation's results
EVALUATION = "evaluation"


# --- pairing images of two layers ----------------------------------------------------


def image_names(layer) -> list[str]:
    """The file name stem of each image of a box layer (its source image, else its annotation file)."""
    return page_names(layer.metadata.get(conventions.SOURCE_IMAGES) or [],
                        conventions.annotation_paths(layer.metadata), layer.metadata.get(conventions.SOURCE_PLANES))


def page_names(sources, files, planes=None) -> list[str]:
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
