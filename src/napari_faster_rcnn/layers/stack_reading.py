"""A stack file (time-lapse, z stack: TIFF, OME-TIFF, Zarr) as layers: ONE lazy image layer with its
leading dimensions (one per channel for a microscope's channels) and ONE box layer paged plane by plane
from the stack's one annotation file; and a stack's annotation file whose stack is not found.

:func:`.reading.read_image_file` and :func:`.reading.read_annotation_file` come here for a stack,
:func:`.folder_reading.read_dataset_folder` for a folder's stack that cannot be pages of it. No Qt here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import (
    Annotation,
    AnnotationError,
    class_list,
    default_annotation_path,
    find_annotation_file,
    load_annotation,
)
from napari_faster_rcnn.core.data.boxes import clip_boxes
from napari_faster_rcnn.core.data.labeling import file_stamp
from napari_faster_rcnn.core.data.stack_files import open_stack, open_stack_array, series_layout, stack_shape
from napari_faster_rcnn.core.data.stack_label_store import StackLabelStore
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.paging_registry import hold
from napari_faster_rcnn.layers.reader_parts import (
    attach_held,
    box_layer_name,
    channel_names,
    predictions_thresholds,
    value_range,
)
from napari_faster_rcnn.layers.reader_reports import report_info
from napari_faster_rcnn.layers.stack_labeling import HeldStack


def read_stack_file(path: Path, annotation_path: Path | None = None, target: Path | None = None) -> list[tuple]:
    """A stack (time-lapse, z stack) as ONE lazy image layer with its leading dimensions and
    ONE box layer whose boxes carry their plane; its annotation is one file, ``NAME.pt``/``.json``
    (``annotation_path`` when given, else the one found beside it; ``target``: where a new one goes)."""
    data = open_stack_array(path)  # lazy: napari decodes the plane shown only
    plane_dims = len(stack_shape(path))
    channels = data.ndim - plane_dims - 2  # 1: a channel axis, last
    microscope = channels == 1 and series_layout(path).channel_axis == "C"  # one layer per channel
    rgb = channels == 1 and not microscope and data.shape[-1] in (3, 4)
    if channels == 1 and not rgb:
        data = open_stack(path)  # dask, so that taking a channel stays lazy
    if channels == 1 and not (rgb or microscope):
        data = data[..., 0]  # gray and alpha samples: the gray, as for 2-D images
    size = tuple(int(side) for side in data.shape[plane_dims : plane_dims + 2])
    annotation_path = annotation_path or (None if target is not None else find_annotation_file(path))
    target = annotation_path or target or default_annotation_path(path)
    stamp = file_stamp(target)
    annotation = load_annotation(annotation_path) if annotation_path else Annotation()
    if not annotation.is_stack:
        if len(annotation):
            raise AnnotationError(annotation_path, f"boxes without 'planes', but {path.name} is a stack")
        annotation = Annotation(classes=annotation.classes, planes=np.zeros((0, plane_dims), dtype=np.int64))
    if annotation.planes.shape[1] != plane_dims:
        raise AnnotationError(
            annotation_path, f"planes have {annotation.planes.shape[1]} leading coordinates, {path.name} has {plane_dims}")
    outside = (annotation.labeled_planes >= np.array(data.shape[:plane_dims])).any(axis=1)
    if outside.any():
        raise AnnotationError(annotation_path, f"planes {annotation.labeled_planes[outside][:5].tolist()} lie outside "
                                               f"{path.name}'s {data.shape[:plane_dims]}")
    options = {"contrast_limits": _stack_contrast_limits(data, plane_dims)} if not rgb else {}
    if microscope:  # napari splits the channels into layers, each with the same metadata
        count = int(data.shape[-1])
        options = {"channel_axis": data.ndim - 1,
                   "contrast_limits": [_stack_contrast_limits(data[..., c], plane_dims) for c in range(count)]}
    image_meta = {conventions.SOURCE_IMAGES: [str(path)], conventions.IMAGE_SIZES: [list(size)],
                  conventions.PLANE_DIMS: plane_dims}
    name = channel_names(path.stem, data.shape[-1]) if microscope else path.stem
    image_layer = (data, {"name": name, "rgb": rgb, "metadata": image_meta, **options}, "image")
    if microscope:
        del image_layer[1]["rgb"]
    planes_shape = tuple(int(side) for side in data.shape[:plane_dims])
    annotation = Annotation(clip_boxes(annotation.boxes, *size), annotation.labels, annotation.scores,
                            annotation.classes, planes=annotation.planes, labeled_planes=annotation.labeled_planes)
    # The layer holds the plane shown only (a StackPages swaps the boxes in as the slider moves);
    # every plane's boxes and the labeled planes are in the store.
    store = StackLabelStore(annotation, target, planes_shape, stamp=stamp, size=size)
    empty = Annotation(np.zeros((0, 4)), [], None if annotation.scores is None else np.zeros(0), annotation.classes,
                       planes=np.zeros((0, plane_dims), np.int64), labeled_planes=annotation.labeled_planes)
    shapes = conventions.stack_shapes_layer_data(
        empty, plane_dims, name=box_layer_name(path.stem, annotation), image_size=size,
        classes=class_list([annotation]), predictions=annotation.scores is not None,
        metadata={conventions.SOURCE_IMAGES: [str(path)], conventions.ANNOTATION_FILES: [str(target)],
                  conventions.ANNOTATION_STAMPS: [stamp], conventions.IMAGE_SIZES: [list(size)],
                  conventions.PLANES_SHAPE: list(planes_shape)},
    )
    held = HeldStack(store)
    saved_thresholds = predictions_thresholds(shapes[1]["metadata"]) if annotation.scores is not None else None
    attach_held(held, hold(shapes[1]["metadata"], held),
                make=held.pager if saved_thresholds is None else _tuned_stack(held, saved_thresholds))
    return [image_layer, shapes]


def _tuned_stack(held: HeldStack, thresholds):
    """``make(viewer, layer)``: a stack's raw detections (predict --raw) shown as the ``thresholds.json``
    beside them keeps them, plane by plane, every raw box behind Tune predictions' sliders."""
    def make(viewer, layer):
        from napari_faster_rcnn.layers.predictions import tune

        held.pager(viewer, layer)  # (paged as any stack's boxes; tuning takes the planes' boxes from it)
        layer.metadata[conventions.THRESHOLDS] = thresholds.to_dict()  # where tuning starts
        return tune(viewer, layer)

    return make


def stack_boxes_without_image(path: Path, annotation: Annotation, stamp=None, report: bool = True) -> tuple:
    """A stack's annotation file (``planes``) whose stack is not found: its boxes per plane, in a box layer
    whose leading dimensions are the planes (the slider steps through them, up to the last plane with a
    box), never as one 2-D picture of every plane's boxes. With ``report`` the viewer says so."""
    dims = int(annotation.planes.shape[1])
    # (no PLANES_SHAPE: the stack's own number of planes is not known without it)
    layer = conventions.stack_shapes_layer_data(
        annotation, dims, name=box_layer_name(path.stem, annotation), classes=class_list([annotation]),
        predictions=annotation.scores is not None,
        metadata={conventions.ANNOTATION_FILES: [str(path)], conventions.SOURCE_IMAGES: [None],
                  conventions.ANNOTATION_STAMPS: [stamp]})
    if report:
        message = (f"{path.name}: the boxes of a stack ({len(annotation)} boxes on "
                   f"{len({tuple(p) for p in annotation.planes.tolist()})} planes), shown plane by plane; its stack "
                   f"({path.stem}.tif or another image named {path.stem}) is not beside it nor in ../input: "
                   "open the stack to see its pixels")
        report_info(message)
    return layer


def _stack_contrast_limits(data, plane_dims: int) -> list:
    """uint8: its range; else the range of the first plane (one plane read, never the stack)."""
    if data.dtype == np.uint8:
        return [0, 255]
    return value_range(np.asarray(data[(0,) * plane_dims]))
