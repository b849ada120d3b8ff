"""How annotations live in napari layers: Shapes data, features and metadata (the classes' colours:
:mod:`.box_colors`).

This module is the one place that knows the layer conventions, so that the
reader, the writer and every widget agree:

- a Shapes layer of rectangles; for a stack the leading coordinate is the image index;
- ``features["label"]`` (the class name, a string) and, for predictions,
  ``features["score"]``; the class list itself is ``metadata["classes"]``;
- ``edge_color`` per box from the class colour, the label drawn as text (for up to
  :data:`TEXT_LIMIT` boxes on an image: see :func:`text_fits`);
- ``metadata`` under the keys below, naming the source files so saving writes
  back to the right place.

It imports napari but not Qt.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, clip_boxes, rectangles_to_boxes
from napari_faster_rcnn.layers.box_colors import class_color, class_colors, edge_colors, text_properties

# Metadata keys (layer.metadata[...]); the image layer of a dataset carries the first three.
SOURCE_IMAGES = "source_images"  # list of str: the image file of each slice (None if unknown)
IMAGE_SIZES = "image_sizes"  # list of [height, width] per slice
DATASET_ROOT = "dataset_root"  # str: the folder that was opened, if any
STACK_FOLDER = "stack_folder"  # str: a stack's layers opened with a dataset folder: the folder
FOLDER_STACKS = "folder_stacks"  # list of str: a dataset folder's image layers (its own, its stacks'): its stacks
ANNOTATION_FILES = "annotation_files"  # list of str: where each slice's annotation is saved
CLASSES = "classes"  # list of str: the class list, in class-id order (id = position + 1)
CLASS_COLORS = "class_colors"  # dict: class name -> "#rrggbb"
LAYER_ROLE = "napari_faster_rcnn"  # "boxes" or "predictions"
STACKED = "stacked"  # bool: vertices carry the image index first
ANNOTATION_STAMPS = "annotation_stamps"  # list: each annotation file's [mtime_ns, size, inode] when read, or None
SOURCE_FORMAT = "source_format"  # str: "coco", "voc" or "yolo" for a folder in that format, opened read-only
THRESHOLDS = "thresholds"  # dict: the score/NMS/class thresholds a predictions layer shows (core.inference.Thresholds)
PLANE_DIMS = "plane_dims"  # int: a stack read as data (time, z): each box's leading coordinates are its plane
LABELED_PLANES = "labeled_planes"  # list of lists: the planes of such a stack a person labeled, boxes or not
SOURCE_PLANES = "source_planes"  # list: per slice of a dataset folder, None (a 2-D image) or a stack's plane
#   (its leading coordinates) when the slice is that plane of the stack SOURCE_IMAGES names (see source_plane)
PLANES_SHAPE = "planes_shape"  # list of int: such a stack's number of planes along each leading dimension
TEXT_HIDDEN = "text_hidden"  # bool: the labels are not drawn because of the box count (see TEXT_LIMIT)

BOXES = "boxes"
PREDICTIONS = "predictions"


def layer_role(layer) -> str | None:
    """``BOXES`` for a layer of labels, ``PREDICTIONS`` for a model's boxes, None for any other layer."""
    return getattr(layer, "metadata", {}).get(LAYER_ROLE)


def is_boxes(layer) -> bool:
    """A layer of labeled boxes (the reader's, or a new box layer)."""
    return layer_role(layer) == BOXES


def is_predictions(layer) -> bool:
    """A layer of a model's boxes, with scores."""
    return layer_role(layer) == PREDICTIONS


def is_box_layer(layer) -> bool:
    """A layer of labels or of predictions."""
    return layer_role(layer) in (BOXES, PREDICTIONS)

#: Labels are drawn while (boxes in view) x (boxes in the layer) stays within this square: one
#: image (one page, one plane) of up to 200 boxes. Labels are the costliest part of showing boxes:
#: napari 0.9 finds each label's position by building the list of *every* shape's vertices once
#: per shape in view, so its text costs grow with that product (10,000 boxes with labels took 13 s
#: to open and 12 s per added box; without labels 1.2 s and 0.2 s), vispy lays out each string in
#: Python (500 labels: ~100 ms per page turn), and a software OpenGL (Mesa, a remote desktop)
#: draws each label in about 0.6-1 ms per frame (500 labels: ~300 ms per frame, panning included;
#: paging a 500-box plane took 0.82 s with labels, 0.29 s without). Above it the labels are
#: switched off (the layer's "display text" box turns them on); the class colours still tell
#: the classes apart.
TEXT_LIMIT = 200


def text_fits(in_view: int, total: int | None = None) -> bool:
    """Whether the labels of ``in_view`` boxes, in a layer of ``total`` (default the same), are drawn."""
    total = in_view if total is None else total
    return in_view * total <= TEXT_LIMIT * TEXT_LIMIT


def features_frame(labels: Sequence[str], scores=None) -> pd.DataFrame:
    # Plain strings rather than a Categorical: a box given a class that is not
    # (yet) in the list keeps its name instead of silently becoming NaN.
    frame = {"label": pd.Series(list(labels), dtype=object)}
    if scores is not None:
        frame["score"] = np.asarray(scores, dtype=np.float64)
    return pd.DataFrame(frame)


def shapes_layer_data(
    annotations: Sequence[Annotation],
    *,
    stacked: bool,
    name: str,
    classes: Sequence[str] | None = None,
    colors: dict | None = None,
    predictions: bool | None = None,
    image_sizes: Sequence | None = None,
    metadata: dict | None = None,
) -> tuple:
    """A napari ``(data, kwargs, "shapes")`` tuple holding the boxes of every image.

    Parameters
    ----------
    annotations
        One annotation per image (per slice of a stack).
    stacked
        Give each box the image index as its leading coordinate.
    classes
        The class list; defaults to the classes named in the annotations.
    predictions
        Show scores and keep ``features["score"]``; by default, when any
        annotation has scores.
    image_sizes
        ``(height, width)`` per image: boxes are clipped to it (as the writer
        clips them), and it sizes the box edges and text.
    metadata
        Extra metadata, e.g. :data:`SOURCE_IMAGES` and :data:`ANNOTATION_FILES`.
    """
    from napari_faster_rcnn.core.data.annotations import class_list

    if not stacked and len(annotations) != 1:
        raise ValueError(f"a single-image layer needs one annotation, got {len(annotations)}")
    if predictions is None:
        predictions = any(a.scores is not None for a in annotations)
    classes = class_list(annotations, known=classes or ())
    colors = class_colors(classes, colors)

    counts = [len(a) for a in annotations]
    per_image = [a.boxes for a in annotations]
    if image_sizes is not None:
        # Show what a save will write: boxes cut at the image border.
        per_image = [clip_boxes(b, *size) for b, size in zip(per_image, image_sizes)]
    boxes = np.concatenate(per_image) if annotations else np.zeros((0, 4))
    labels = [label for a in annotations for label in a.labels]
    index = np.repeat(np.arange(len(annotations)), counts) if stacked else None
    vertices = boxes_to_rectangles(boxes, index)
    scores = None
    if predictions:
        scores = np.concatenate(
            [a.scores if a.scores is not None else np.ones(len(a)) for a in annotations]
        ) if annotations else np.zeros(0)

    text_shown = text_fits(max(counts, default=0), len(labels))
    longest = max((max(size) for size in image_sizes), default=512) if image_sizes else 512
    edge_width = box_edge_width(longest, boxes)
    meta = {
        LAYER_ROLE: PREDICTIONS if predictions else BOXES,
        STACKED: stacked,
        CLASSES: list(classes),
        CLASS_COLORS: colors,
    }
    if not text_shown:
        meta[TEXT_HIDDEN] = True
    if image_sizes is not None:
        meta[IMAGE_SIZES] = [list(map(int, size)) for size in image_sizes]
    meta.update(metadata or {})
    kwargs = {
        "name": name,
        "ndim": 3 if stacked else 2,
        "shape_type": "rectangle",
        "edge_width": edge_width,
        # An empty layer gets the first class's colour, which new rectangles then take.
        "edge_color": edge_colors(labels, colors) if labels else next(iter(colors.values()), class_color(0)),
        "face_color": "transparent",
        "features": features_frame(labels, scores),
        "feature_defaults": _feature_defaults(classes, predictions),
        "text": {**text_properties(colors, predictions, size=max(12, min(16, round(longest / 50)))),
                 "visible": text_shown},
        "metadata": meta,
    }
    return (list(vertices) if len(vertices) else [], kwargs, "shapes")


#: Box edges are at most this wide (image pixels), however large the image: on a 20000 px image,
#: edges scaled with the image (1/300 of it) would cover small objects whole when zoomed in.
MAX_EDGE_WIDTH = 6.0


def box_edge_width(longest: int, boxes: np.ndarray) -> float:
    """Edge width of the boxes of images whose longest side is ``longest``: 1/300 of it, at
    least 1.5 and at most :data:`MAX_EDGE_WIDTH`, and no more than an eighth of the median box's
    shorter side (at least 1), so that an edge never hides the object it frames."""
    width = min(MAX_EDGE_WIDTH, max(1.5, round(longest / 300, 1)))
    if len(boxes):
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        width = min(width, max(1.0, round(float(np.median(sides)) / 8, 1)))
    return width


def _feature_defaults(classes: Sequence[str], predictions: bool) -> dict:
    defaults = {"label": classes[0] if classes else "object"}
    if predictions:
        defaults["score"] = 1.0
    return defaults


def annotations_from_shapes(
    data: Sequence[np.ndarray],
    features: pd.DataFrame | None,
    metadata: dict,
    n_images: int | None = None,
    clip: bool = True,
) -> list[Annotation]:
    """Split a Shapes layer's boxes into one :class:`Annotation` per image.

    Each shape becomes the axis-aligned box around its vertices. Boxes are
    clipped to their image when the metadata knows its size. For a stack,
    images without boxes get an empty annotation, so a save never leaves a
    stale file behind.
    """
    boxes, index = rectangles_to_boxes(data)
    stacked = metadata.get(STACKED, index is not None)
    if not stacked or index is None:  # index is None for a layer without shapes
        index = np.zeros(len(boxes), dtype=np.int64)
    sizes = metadata.get(IMAGE_SIZES)
    if n_images is None:
        n_images = _slice_count(metadata) or (int(index.max()) + 1 if len(index) else 1)
    labels, scores, classes = _labels_scores_classes(features, metadata, len(boxes))
    if len(index) and (index.min() < 0 or index.max() >= n_images):
        outside = sorted(set(index[(index < 0) | (index >= n_images)].tolist()))
        raise ValueError(f"boxes lie on image indices {outside[:5]} outside the {n_images} images of the stack")
    order = np.argsort(index, kind="stable")
    starts = np.searchsorted(index[order], np.arange(n_images + 1))
    result = []
    for image in range(n_images):
        keep = order[starts[image] : starts[image + 1]]
        image_boxes = boxes[keep]
        if clip and sizes is not None and image < len(sizes):
            image_boxes = clip_boxes(image_boxes, *sizes[image])
        result.append(
            Annotation(
                boxes=image_boxes,
                labels=[labels[i] for i in keep],
                scores=None if scores is None else scores[keep],
                classes=classes,
            )
        )
    return result


def _labels_scores_classes(features, metadata: dict, count: int) -> tuple[list[str], np.ndarray | None, list[str]]:
    """A box layer's labels (a missing one is "object"), its scores (predictions only) and its class
    list (the metadata's, then any label not in it)."""
    labels = _feature_column(features, "label", count)
    labels = ["object" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in labels]
    scores = None
    if features is not None and "score" in features and metadata.get(LAYER_ROLE) == PREDICTIONS:
        scores = np.asarray(features["score"], dtype=np.float64)
    classes = list(metadata.get(CLASSES) or [])
    for label in labels:
        if label not in classes:
            classes.append(label)
    return labels, scores, classes


def source_plane(metadata: dict, index: int) -> tuple[int, ...] | None:
    """Which plane of its file slice ``index`` of a folder's layer is: None for a 2-D image (or a layer
    without :data:`SOURCE_PLANES`), else the plane's leading coordinates in the stack that
    ``metadata[SOURCE_IMAGES][index]`` names."""
    planes = metadata.get(SOURCE_PLANES) or []
    plane = planes[index] if 0 <= index < len(planes) else None
    return None if plane is None else tuple(int(v) for v in plane)


def _slice_count(metadata: dict) -> int | None:
    for key in (SOURCE_IMAGES, ANNOTATION_FILES, IMAGE_SIZES):
        if metadata.get(key) is not None:
            return len(metadata[key])
    return None


def _feature_column(features, column: str, length: int) -> list:
    if features is None or column not in features or len(features) != length:
        return ["object"] * length
    return list(np.asarray(features[column], dtype=object))


def annotation_paths(metadata: dict) -> list[Path | None]:
    """The annotation file of each slice, from the layer metadata (None where unknown)."""
    return [Path(p) if p else None for p in metadata.get(ANNOTATION_FILES) or []]

#: Above this many boxes on the image shown, the editable box layer holds only the boxes around the
#: view (see :mod:`~napari_faster_rcnn.layers.box_window`): napari's Shapes layer keeps one Python
#: object per box, and 100,000 of them take 8 to 30 s to open and about a second per edit.
WINDOW_THRESHOLD = 5000
#: The most boxes the editable window holds; zoomed out further, it holds none ("zoom in to edit").
WINDOW_CAP = 2000
DISPLAY_ID = "box_display_id"  # str (box layer): the id its display-only layer of all boxes carries
BOX_DISPLAY = "box_display_of"  # str (display layer): the DISPLAY_ID of the box layer it draws for


def windowed(count: int) -> bool:
    """Whether an image of ``count`` boxes is edited through a window (see :data:`WINDOW_THRESHOLD`)."""
    return count > WINDOW_THRESHOLD

# --- a stack as data: one image (time, z, ...) and one annotation file --------------------------


def stack_shapes_layer_data(annotation: Annotation, plane_dims: int, name: str, image_size=None,
                            metadata: dict | None = None, **options) -> tuple:
    """Layer data of a stack's boxes: napari Shapes with ``ndim = plane_dims + 2``, each box's
    vertices led by its plane (``annotation.planes``); the labeled planes go in the metadata."""
    planes = annotation.planes if annotation.planes is not None else np.zeros((len(annotation), plane_dims))
    labeled = annotation.labeled_planes if annotation.labeled_planes is not None else np.zeros((0, plane_dims))
    if planes.shape[1] != plane_dims or labeled.shape[1] != plane_dims:
        raise ValueError(f"the annotation's planes have {planes.shape[1]} leading coordinates, the stack {plane_dims}")
    flat = Annotation(annotation.boxes, annotation.labels, annotation.scores, annotation.classes)
    meta = {PLANE_DIMS: int(plane_dims), LABELED_PLANES: labeled.astype(int).tolist(), **(metadata or {})}
    vertices, kwargs, kind = shapes_layer_data(
        [flat], stacked=False, name=name, image_sizes=None if image_size is None else [image_size],
        metadata=meta, **options)
    lead = planes.astype(np.float64)
    vertices = [np.concatenate([np.repeat(lead[i][None], len(v), axis=0), np.asarray(v, dtype=np.float64)], axis=1)
                for i, v in enumerate(vertices)]
    kwargs["ndim"] = int(plane_dims) + 2
    return vertices, kwargs, kind


def stack_annotation_from_shapes(data: Sequence[np.ndarray], features: pd.DataFrame | None, metadata: dict,
                                 clip: bool = True) -> Annotation:
    """The one annotation of a stack layer (see :func:`stack_shapes_layer_data`): boxes, labels,
    each box's plane, and the labeled planes (those in the metadata and every plane with a box)."""
    plane_dims = int(metadata[PLANE_DIMS])
    data = list(data)
    boxes, _ = rectangles_to_boxes([np.asarray(v)[:, -2:] for v in data]) if data else (np.zeros((0, 4)), None)
    planes = (np.array([np.round(np.asarray(v, dtype=np.float64)[0, :plane_dims]) for v in data]).astype(np.int64)
              .reshape(-1, plane_dims))
    sizes = metadata.get(IMAGE_SIZES)
    if clip and sizes:
        boxes = clip_boxes(boxes, *sizes[0])
    labels, scores, classes = _labels_scores_classes(features, metadata, len(boxes))
    labeled = np.asarray(metadata.get(LABELED_PLANES) or np.zeros((0, plane_dims)), dtype=np.int64)
    return Annotation(boxes=boxes, labels=labels, scores=scores, classes=classes, planes=planes,
                      labeled_planes=labeled.reshape(-1, plane_dims))


def image_showing_sources(viewer, box_layer):
    """The image layer showing the same source images as ``box_layer`` (as the reader makes a pair of
    layers), or None."""
    from napari.layers import Image

    sources = box_layer.metadata.get(SOURCE_IMAGES)
    if not sources or not any(sources) or viewer is None:
        return None
    for layer in viewer.layers:
        if isinstance(layer, Image) and layer.metadata.get(SOURCE_IMAGES) == sources:
            return layer
    return None
