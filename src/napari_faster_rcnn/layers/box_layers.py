"""Box layers for labeling: every image's boxes of a layer, the image layer under it, and a new
box layer for any image layer.

No Qt here.
"""

from __future__ import annotations

from napari_faster_rcnn.core.data.annotations import (
    Annotation,
    default_annotation_path,
    find_annotation_file,
    load_annotation,
)
from napari_faster_rcnn.core.data.image_files import is_image_file
from napari_faster_rcnn.core.data.labeling import file_stamp
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.paging_registry import model_annotations


def layer_annotations(layer) -> list[Annotation]:
    """Every image's boxes of a box or predictions layer: from its paging model when it has one
    (the edits on screen included), else from the layer's own shapes."""
    paged = model_annotations(layer.metadata)
    if paged is not None:
        return paged
    count = None if layer.ndim >= 3 else 1
    return conventions.annotations_from_shapes(layer.data, layer.features, layer.metadata, n_images=count)


def find_image_layer(viewer, box_layer):
    """The image layer under ``box_layer``: the one showing the same source images, else one of
    as many slices."""
    from napari.layers import Image

    paired = conventions.image_showing_sources(viewer, box_layer)
    if paired is not None:
        return paired
    sources = box_layer.metadata.get(conventions.SOURCE_IMAGES)
    images = [layer for layer in viewer.layers if isinstance(layer, Image)]
    count = len(sources) if sources else None
    for layer in images:
        spatial = _spatial_shape(layer)
        if (len(spatial) == 3 and spatial[0] == count and box_layer.ndim == 3) or (
            len(spatial) == 2 and box_layer.ndim == 2
        ):
            return layer
    return None


def new_box_layer(viewer, image_layer):
    """Add a box layer for any image layer (one image or a stack) and return it.

    Its boxes are saved beside each source image (``target/`` for images in
    ``input/``) when the image came from a file; an annotation already there is
    loaded, so it is never overwritten with nothing.
    """
    from napari.layers import Layer

    spatial = _spatial_shape(image_layer)
    if len(spatial) not in (2, 3):
        raise ValueError(f"{image_layer.name!r} has {len(spatial)} dimensions besides colour; boxes are drawn "
                         "on a 2-D image or a stack of them")
    count = spatial[0] if len(spatial) == 3 else 1
    metadata = image_layer.metadata
    sizes = metadata.get(conventions.IMAGE_SIZES) or [list(spatial[-2:])] * count
    sources = list(metadata.get(conventions.SOURCE_IMAGES) or [])
    if not sources and count == 1 and image_layer.source.path and is_image_file(image_layer.source.path):
        sources = [str(image_layer.source.path)]
    sources = (sources + [None] * count)[:count]
    planes = [conventions.source_plane(metadata, index) for index in range(count)]
    if any(plane is not None for plane in planes):  # a folder's pages with stacks' planes: each stack's one file
        return _new_pages_layer(viewer, image_layer, sources, planes, sizes)
    files = [(find_annotation_file(s) or default_annotation_path(s)) if s else None for s in sources]
    stamps = [file_stamp(path) for path in files]
    annotations = [load_annotation(path) if stamp is not None else Annotation() for path, stamp in zip(files, stamps)]
    data, kwargs, kind = conventions.shapes_layer_data(
        annotations,
        stacked=len(spatial) == 3,
        name=f"{image_layer.name} boxes",
        image_sizes=sizes,
        metadata={
            conventions.SOURCE_IMAGES: sources,
            conventions.ANNOTATION_FILES: [str(path) if path else None for path in files],
            conventions.ANNOTATION_STAMPS: stamps,
        },
    )
    if len(image_layer.scale) == kwargs["ndim"]:  # sit on the image however it is scaled
        kwargs["scale"], kwargs["translate"] = list(image_layer.scale), list(image_layer.translate)
    return viewer.add_layer(Layer.create(data, kwargs, kind))


def _spatial_shape(image_layer) -> tuple:
    data = image_layer.data[0] if image_layer.multiscale else image_layer.data
    shape = tuple(int(s) for s in data.shape)
    return shape[:-1] if image_layer.rgb else shape


def _new_pages_layer(viewer, image_layer, sources, planes, sizes):
    """:func:`new_box_layer` for a folder's image layer whose pages include stacks' planes: the pages'
    boxes in a :class:`~napari_faster_rcnn.core.data.folder_label_store.FolderLabelStore` (a stack's planes from its
    one file), paged into the new layer."""
    import numpy as np
    from napari.layers import Layer

    from napari_faster_rcnn.core.data.folder_label_store import FolderLabelStore
    from napari_faster_rcnn.core.data.stack_files import stack_shape
    from napari_faster_rcnn.core.data.stack_planes import plane_index, split_planes
    from napari_faster_rcnn.layers.folder_pages import FolderPages
    from napari_faster_rcnn.layers.paging_registry import keep_with_layer

    files, stamps, annotations, labeled, shapes, stacks = [], [], [], [], {}, {}
    for index, (source, plane) in enumerate(zip(sources, planes)):
        path = (find_annotation_file(source) or default_annotation_path(source)) if source else None
        stamp = file_stamp(path)
        if plane is None:
            annotation = load_annotation(path) if stamp is not None else Annotation()
        else:
            if path not in stacks:
                shape = stack_shape(source)
                whole = load_annotation(path) if stamp is not None else Annotation(planes=np.zeros((0, len(plane)), np.int64))
                if shape is None or not whole.is_stack or whole.planes.shape[1] != len(shape):
                    raise ValueError(f"{path}: not an annotation of the stack {source} (boxes without fitting 'planes')")
                stacks[path] = (split_planes(whole, shape), {plane_index(p, shape) for p in whole.labeled_planes}, shape)
                shapes[str(path)] = shape
            per_plane, marked, shape = stacks[path]
            position = plane_index(plane, shape)
            annotation = per_plane[position]
            if position in marked:
                labeled.append(index)
        files.append(path)
        stamps.append(stamp)
        annotations.append(annotation)
    store = FolderLabelStore(annotations, files, planes, shapes, stamps=stamps,
                             sizes=[tuple(size) for size in sizes], labeled=labeled)
    empty = [Annotation() for _ in annotations]
    data, kwargs, kind = conventions.shapes_layer_data(
        empty, stacked=True, name=f"{image_layer.name} boxes", image_sizes=sizes, classes=store.classes,
        metadata={
            conventions.SOURCE_IMAGES: list(sources),
            conventions.SOURCE_PLANES: [None if plane is None else list(plane) for plane in planes],
            conventions.ANNOTATION_FILES: [str(path) if path else None for path in files],
            conventions.ANNOTATION_STAMPS: stamps,
        },
    )
    if len(image_layer.scale) == kwargs["ndim"]:
        kwargs["scale"], kwargs["translate"] = list(image_layer.scale), list(image_layer.translate)
    layer = viewer.add_layer(Layer.create(data, kwargs, kind))
    keep_with_layer(layer, FolderPages(viewer, layer, store))
    return layer
