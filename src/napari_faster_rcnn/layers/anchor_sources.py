"""What the "Anchor boxes" widget shows, read from the viewer's own layers. No Qt.

The widget shows the anchors of the images of a box layer and its image layer (see
:mod:`~napari_faster_rcnn.layers.anchors` for the layers that show them). :func:`layer_items`
gives each image's size and boxes as training reads them: a folder's pages that nobody labeled
are left out, and a stack's box layer gives its labeled planes only (:func:`layer_planes`), since
an unlabeled plane is never an image without objects. :func:`layer_image` reads one image or plane
of an image layer, cut to its own size; :func:`stack_index`, :func:`shown_plane` and
:func:`show_plane` follow and move the dims sliders, so the widget shows the image the viewer shows.
"""

from __future__ import annotations

import numpy as np

from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.folder_pages import page_names, unlabeled_planes
from napari_faster_rcnn.layers.stack_labeling import stack_annotation


def layer_items(box_layer, image_layer=None) -> tuple[list, list[str], dict]:
    """``(items, names, class colours)`` of a box layer's images: ``((height, width), Annotation)``
    each, sizes from its metadata (else the image layer's), names from its source images.

    A stack's box layer (time, z) gives one item per LABELED plane, in the order of
    :func:`layer_planes`: an unlabeled plane is never an image without objects.

    Raises
    ------
    ValueError
        When the sizes of its images are not known.
    """
    planes = layer_planes(box_layer)
    if planes is not None:
        annotation = stack_annotation(box_layer)  # paged plane by plane or holding every box
        sizes = box_layer.metadata.get(conventions.IMAGE_SIZES)
        size = tuple(sizes[0]) if sizes else (image_shape(image_layer) if image_layer is not None else None)
        if size is None:
            raise ValueError(f"layer {box_layer.name!r} does not know the size of its stack's planes; open the "
                             "stack with the Faster R-CNN reader")
        source = (box_layer.metadata.get(conventions.SOURCE_IMAGES) or [None])[0]
        stem = str(source).rsplit("/", 1)[-1].rsplit(".", 1)[0] if source else box_layer.name
        return ([(tuple(int(v) for v in size), annotation.on_plane(plane)) for plane in planes],
                [f"{stem}[{','.join(map(str, plane))}]" for plane in planes],
                dict(box_layer.metadata.get(conventions.CLASS_COLORS) or {}))
    annotations = layer_annotations(box_layer)
    sizes = box_layer.metadata.get(conventions.IMAGE_SIZES)
    if (not sizes or len(sizes) != len(annotations)) and image_layer is not None:
        sizes = image_layer.metadata.get(conventions.IMAGE_SIZES) or [image_shape(image_layer)] * len(annotations)
    if not sizes or len(sizes) != len(annotations):
        raise ValueError(f"layer {box_layer.name!r} does not know the sizes of its {len(annotations)} images; "
                         "open the images with the Faster R-CNN reader, or choose a folder")
    sources = box_layer.metadata.get(conventions.SOURCE_IMAGES) or [None] * len(annotations)
    names = [str(source).rsplit("/", 1)[-1].rsplit(".", 1)[0] if source else str(k) for k, source in
             enumerate(sources)]
    if box_layer.metadata.get(conventions.SOURCE_PLANES):  # a folder's pages with stacks' planes
        names = page_names(box_layer.metadata, len(annotations))
        left_out = unlabeled_planes(box_layer, annotations)  # planes nobody labeled: left out, as in training
        keep = [i for i in range(len(annotations)) if i not in left_out]
        annotations, sizes, names = [annotations[i] for i in keep], [sizes[i] for i in keep], [names[i] for i in keep]
    return ([(tuple(int(v) for v in size), annotation) for size, annotation in zip(sizes, annotations)], names,
            dict(box_layer.metadata.get(conventions.CLASS_COLORS) or {}))


def layer_planes(box_layer) -> list[tuple[int, ...]] | None:
    """The labeled planes of a stack's box layer (marked, or holding a box), sorted; None for a
    layer of 2-D images."""
    if not box_layer.metadata.get(conventions.PLANE_DIMS):
        return None
    annotation = stack_annotation(box_layer)  # paged plane by plane or holding every box
    return [tuple(int(v) for v in plane) for plane in annotation.labeled_planes.tolist()]


def shown_plane(viewer, image_layer, planes) -> int | None:
    """The position in ``planes`` (of :func:`layer_planes`) of the plane the dims sliders show, or
    None when that plane is not labeled."""
    if image_layer is None or not planes:
        return None
    axis = viewer.dims.ndim - image_layer.ndim
    step = tuple(int(v) for v in viewer.dims.current_step[axis:axis + len(planes[0])])
    return planes.index(step) if step in planes else None


def show_plane(viewer, image_layer, plane) -> None:
    """Move the dims sliders to ``plane`` (leading coordinates) of a stack's image layer."""
    axis = viewer.dims.ndim - image_layer.ndim
    for offset, value in enumerate(plane):
        if viewer.dims.current_step[axis + offset] != value:
            viewer.dims.set_current_step(axis + offset, int(value))


def is_stack(image_layer) -> bool:
    return image_layer.ndim >= 3  # an RGB layer's ndim leaves out the channels


def stack_length(image_layer) -> int:
    return int(image_layer.data.shape[0]) if is_stack(image_layer) else 1


def image_shape(image_layer) -> tuple[int, int]:
    shape = image_layer.data.shape
    return tuple(int(v) for v in (shape[-3:-1] if image_layer.rgb else shape[-2:]))


def layer_image(image_layer, index) -> np.ndarray:
    """Image ``index`` of an image layer (a stack or one image), cut to its own size when the
    layer's metadata knows it (a stack pads smaller images); for a plane (a tuple of leading
    coordinates, see :func:`layer_planes`), that plane of a stack read as data."""
    if isinstance(index, tuple):  # a plane of a stack read as data: its leading coordinates
        return np.asarray(image_layer.data[index])
    data = image_layer.data[index] if is_stack(image_layer) else image_layer.data
    image = np.asarray(data)
    sizes = image_layer.metadata.get(conventions.IMAGE_SIZES)
    if sizes and index < len(sizes):
        height, width = sizes[index]
        image = image[:height, :width]
    return image


def stack_index(viewer, image_layer) -> int:
    """The image of a stack layer that the dims slider shows (0 for one image)."""
    if image_layer is None or not is_stack(image_layer):
        return 0
    axis = viewer.dims.ndim - image_layer.ndim
    step = viewer.dims.current_step[axis] if 0 <= axis < len(viewer.dims.current_step) else 0
    return int(np.clip(step, 0, stack_length(image_layer) - 1))
