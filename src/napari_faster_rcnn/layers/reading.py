"""Images, annotation files and dataset folders as image + box layers (the reader's work).

``napari_faster_rcnn._reader.get_reader`` chooses one of the ``read_*``
functions here; a folder in COCO, Pascal VOC or YOLO opens read-only through
:func:`.interchange.read_foreign_folder` instead. No Qt here.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import (
    Annotation,
    AnnotationError,
    class_list,
    find_annotation_file,
    load_annotation,
)
from napari_faster_rcnn.core.data.boxes import clip_boxes
from napari_faster_rcnn.core.data.folders import DatasetError, discover_dataset, find_image_folder
from napari_faster_rcnn.core.data.image_files import ImageReadError, is_image_file
from napari_faster_rcnn.core.data.image_stack import lazy_image_stack
from napari_faster_rcnn.core.data.images import image_header, read_image
from napari_faster_rcnn.core.data.labeling import (
    FolderLabelStore,
    StackLabelStore,
    file_stamp,
    plane_index,
    split_planes,
)
from napari_faster_rcnn.core.data.regions import (
    is_zarr_folder,
    open_regions,
    region_levels,
    region_stack_levels,
)
from napari_faster_rcnn.core.data.stack_files import (
    open_stack,
    open_stack_array,
    read_plane,
    series_layout,
    stack_shape,
)
from napari_faster_rcnn.layers import box_window, conventions
from napari_faster_rcnn.layers.folder_pages import HeldFolder
from napari_faster_rcnn.layers.slice_view import attach_when_added, hold
from napari_faster_rcnn.layers.stack_labeling import HeldStack

logger = logging.getLogger(__name__)

#: An image with a side above this many pixels (or any Zarr store) opens as a multiscale layer
#: read by region: napari reads only the part on screen, at the level of detail the zoom needs.
LARGE_IMAGE_SIDE = 4096

#: Whether napari keeps the pages of a folder's image layer in its dask cache once read. It does not:
#: that cache holds every page visited (2.5 GB after 100 pages of 2048 px RGB at 16 bits), and a page
#: turn paid for its bookkeeping (20 to 90 ms); the pages next to the one shown are read ahead instead
#: (see :mod:`~napari_faster_rcnn.core.data.read_ahead`).
PAGES_CACHED = False


def read_image_file(path) -> list[tuple]:
    """An image and its boxes (from ``STEM.pt``/``.json`` beside it or in ``../target``)."""
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    if stack_shape(path) is not None:  # a TIFF, OME-TIFF or Zarr stack
        return read_stack_file(path)
    image = image_layer_data(path)
    annotation_path = find_annotation_file(path)
    target = annotation_path or _default_annotation_path(path)
    stamp = file_stamp(target)  # before reading: a change while reading is caught, not missed
    annotation = load_annotation(annotation_path) if annotation_path else Annotation()
    return _single_image_layers(path, image, annotation, target, stamp)


def read_annotation_file(path) -> list[tuple]:
    """An annotation's boxes, with its image when one of the same stem is found."""
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    stamp = file_stamp(path)
    annotation = load_annotation(path)
    image_path = _find_image_for(path)
    if image_path is None and annotation.is_stack:
        return [stack_boxes_without_image(path, annotation, stamp)]
    if image_path is None:
        layer = conventions.shapes_layer_data(
            [annotation],
            stacked=False,
            name=_layer_name(path.stem, annotation),
            metadata={conventions.ANNOTATION_FILES: [str(path)], conventions.SOURCE_IMAGES: [None], conventions.ANNOTATION_STAMPS: [stamp]},
        )
        return [layer]
    if annotation.is_stack and stack_shape(image_path) is not None:
        return read_stack_file(image_path, annotation_path=path)
    return _single_image_layers(image_path, image_layer_data(image_path), annotation, path, stamp)


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
    target = annotation_path or target or _default_annotation_path(path)
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
    name = [f"{path.stem} [channel {c}]" for c in range(int(data.shape[-1]))] if microscope else path.stem
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
        empty, plane_dims, name=_layer_name(path.stem, annotation), image_size=size,
        classes=class_list([annotation]), predictions=annotation.scores is not None,
        metadata={conventions.SOURCE_IMAGES: [str(path)], conventions.ANNOTATION_FILES: [str(target)],
                  conventions.ANNOTATION_STAMPS: [stamp], conventions.IMAGE_SIZES: [list(size)],
                  conventions.PLANES_SHAPE: list(planes_shape)},
    )
    held = HeldStack(store)
    _attach(held, hold(shapes[1]["metadata"], held), make=held.pager)
    return [image_layer, shapes]


def stack_boxes_without_image(path: Path, annotation: Annotation, stamp=None, report: bool = True) -> tuple:
    """A stack's annotation file (``planes``) whose stack is not found: its boxes per plane, in a box layer
    whose leading dimensions are the planes (the slider steps through them, up to the last plane with a
    box), never as one 2-D picture of every plane's boxes. With ``report`` the viewer says so."""
    dims = int(annotation.planes.shape[1])
    # (no PLANES_SHAPE: the stack's own number of planes is not known without it)
    layer = conventions.stack_shapes_layer_data(
        annotation, dims, name=_layer_name(path.stem, annotation), classes=class_list([annotation]),
        predictions=annotation.scores is not None,
        metadata={conventions.ANNOTATION_FILES: [str(path)], conventions.SOURCE_IMAGES: [None],
                  conventions.ANNOTATION_STAMPS: [stamp]})
    if report:
        message = (f"{path.name}: the boxes of a stack ({len(annotation)} boxes on "
                   f"{len({tuple(p) for p in annotation.planes.tolist()})} planes), shown plane by plane; its stack "
                   f"({path.stem}.tif or another image named {path.stem}) is not beside it nor in ../input: "
                   "open the stack to see its pixels")
        _report(message)
    return layer


def _stack_contrast_limits(data, plane_dims: int) -> list:
    """uint8: its range; else the range of the first plane (one plane read, never the stack)."""
    if data.dtype == np.uint8:
        return [0, 255]
    sample = np.asarray(data[(0,) * plane_dims])
    low, high = float(sample.min()), float(sample.max())
    return [low, high if high > low else low + 1]


def image_layer_data(path: Path) -> tuple:
    """``(data, size, image layer options)`` of one image file: its pixels, or for a large
    image (see :data:`LARGE_IMAGE_SIDE`) and a Zarr store the lazy levels of a multiscale layer."""
    if is_zarr_folder(path):
        regions = open_regions(path)
    else:
        header = image_header(path)
        report_stacks([(path, header.pages)])
        if max(header.height, header.width) <= LARGE_IMAGE_SIDE:
            image = read_image(path)
            return image, image.shape[:2], {}
        regions = open_regions(path)
    levels = region_levels(regions)
    options = {"multiscale": len(levels) > 1, "contrast_limits": _contrast_limits(regions, levels)}
    return (levels if len(levels) > 1 else levels[0]), (regions.height, regions.width), options


def _contrast_limits(regions, levels) -> list:
    """uint8: its range; else the range of the smallest level when the file has it, or of a
    central region: never a scan of the whole image."""
    if regions.dtype == np.uint8:
        return [0, 255]
    height, width = levels[-1].shape[:2]
    if len(regions.level_shapes) > 1 and max(height, width) <= 2 * LARGE_IMAGE_SIDE and height * width <= 2**22:
        sample = np.asarray(levels[-1])
    else:
        cy, cx, half = regions.height // 2, regions.width // 2, 512
        sample = regions.read(cy - half, cy + half, cx - half, cx + half)
    low, high = float(sample.min()), float(sample.max())
    return [low, high if high > low else low + 1]


def _default_annotation_path(image_path: Path) -> Path:
    from napari_faster_rcnn.core.data.annotations import default_annotation_path

    return default_annotation_path(image_path)


def _find_image_for(annotation_path: Path) -> Path | None:
    folder = annotation_path.parent
    candidates = [folder]
    if folder.name == "target":
        candidates.append(folder.parent / "input")
    for candidate in candidates:
        if candidate.is_dir():
            for image in sorted(candidate.iterdir()):
                if image.stem == annotation_path.stem and (is_image_file(image) or is_zarr_folder(image)):
                    return image
    sibling = find_image_folder(folder, {annotation_path.stem}) if folder.parent.is_dir() else None
    if sibling is not None:
        for image in sorted(sibling.iterdir()):
            if image.stem == annotation_path.stem and (is_image_file(image) or is_zarr_folder(image)):
                return image
    return None


def _layer_name(stem: str, annotation: Annotation) -> str:
    return f"{stem} {'predictions' if annotation.scores is not None else 'boxes'}"


def _single_image_layers(image_path: Path, image: tuple, annotation: Annotation, target: Path, stamp) -> list[tuple]:
    data, size, options = image
    size = tuple(int(side) for side in size)
    image_meta = {conventions.SOURCE_IMAGES: [str(image_path)], conventions.IMAGE_SIZES: [list(size)]}
    image_layer = (data, {"name": image_path.stem, "rgb": True, "metadata": image_meta, **options}, "image")
    metadata = {conventions.SOURCE_IMAGES: [str(image_path)], conventions.ANNOTATION_FILES: [str(target)],
                conventions.ANNOTATION_STAMPS: [stamp]}
    if conventions.windowed(len(annotation)):
        return [image_layer, *_windowed_layers(annotation, size, _layer_name(image_path.stem, annotation), metadata)]
    shapes = conventions.shapes_layer_data(
        [annotation],
        stacked=False,
        name=_layer_name(image_path.stem, annotation),
        image_sizes=[size],
        metadata=metadata,
    )
    return [image_layer, shapes]


def _windowed_layers(annotation: Annotation, size, name: str, metadata: dict) -> list[tuple]:
    """A crowded image's boxes (see :mod:`~napari_faster_rcnn.layers.box_window`): a display-only picture of
    every box and an empty box layer, tied to the full annotation; once the box layer is in the viewer, a
    :class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes` fills it with the boxes around the view."""
    annotation = _clipped(annotation, size)  # as the layer would show them
    display_id = box_window.new_display_id()
    shapes = conventions.shapes_layer_data(
        [_empty_like(annotation)], stacked=False, name=name, classes=class_list([annotation]), predictions=annotation.scores is not None,
        image_sizes=[size], metadata={**metadata, conventions.DISPLAY_ID: display_id},
    )
    colors = shapes[1]["metadata"][conventions.CLASS_COLORS]
    held = box_window.HeldBoxes([annotation])
    key = hold(shapes[1]["metadata"], held)
    display = box_window.display_layer_data(annotation, size, colors, box_window.display_name(name), display_id)
    _attach(held, key)
    return [display, shapes]


# --- folders ------------------------------------------------------------------


def read_dataset_folder(path) -> list[tuple]:
    """A dataset folder as one lazy image stack and one Shapes layer of every box.

    The folder's pages (the slider's axis) are its 2-D images and the planes of its stacks
    (time-lapses, z stacks: a stack's planes one after the other, in file order; see
    :func:`stack_pages`). A stack that cannot be pages (a microscope's channels, planes too large
    to read whole) opens as its own layers, and the viewer says so.

    Files that cannot be read are skipped and listed in a warning; an image
    whose annotation file is unreadable is skipped with it, so that a later
    save cannot overwrite that file.
    """
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    dataset = discover_dataset(path)
    skipped = list(dataset.skipped)
    images, sizes, dtypes, annotations, targets, stamps, stacks = [], [], [], [], [], [], []
    planes, shapes, labeled, paged = [], {}, [], []
    stack_layers, stack_names, lone = [], [], []
    for sample in dataset.samples:
        size = None
        dtype = None
        if sample.image is not None:
            try:
                header = image_header(sample.image, note_pages=False)  # (a stack is opened whole: no note)
            except ImageReadError as error:
                skipped.append((sample.image, error.reason))
                continue
            candidate = header.pages > 1 or Path(sample.image).is_dir()  # (stack_shape parses: only these)
            if candidate and stack_shape(sample.image) is not None:
                target = dataset.annotation_path(sample)
                try:
                    pages = stack_pages(Path(sample.image), sample.annotation, target)
                except (AnnotationError, ImageReadError) as error:
                    skipped.append((error.path, error.reason))
                    continue
                if isinstance(pages, StackAsPages):  # its planes: pages of the folder
                    first = len(annotations)
                    labeled.extend(first + position for position in pages.labeled)
                    shapes[str(target)] = pages.shape
                    count = len(pages.planes)
                    images.extend([sample.image] * count)
                    planes.extend(pages.planes)
                    sizes.extend([list(pages.size)] * count)
                    dtypes.append(pages.dtype)
                    annotations.extend(pages.annotations)
                    targets.extend([target] * count)
                    stamps.extend([pages.stamp] * count)
                    paged.append((Path(sample.image), pages.shape, first))
                    continue
                # not pages (``pages`` says why): its own layers, paged plane by plane, its one annotation file
                try:
                    layers = read_stack_file(Path(sample.image), annotation_path=sample.annotation, target=target)
                except (AnnotationError, ImageReadError) as error:
                    skipped.append((error.path, error.reason))
                    continue
                for layer in layers:  # so that Predict's folder mode finds the stacks of the folder
                    layer[1]["metadata"][conventions.STACK_FOLDER] = str(path)
                stack_layers.extend(layers)
                stack_names.append((Path(sample.image), stack_shape(sample.image), pages))
                continue
            if header.pages > 1:
                image_header(sample.image)  # the note (once per file) that it shows as its first page
            size, dtype = [header.height, header.width], header.dtype
            stacks.append((sample.image, header.pages))
        stamp = file_stamp(dataset.annotation_path(sample))
        try:
            annotation = load_annotation(sample.annotation) if sample.annotation else Annotation()
        except AnnotationError as error:
            skipped.append((sample.annotation, error.reason))
            if sample.image is not None:
                skipped.append((sample.image, "skipped with its unreadable annotation"))
            continue
        if sample.image is None and annotation.is_stack:  # a stack's file (predict --out) without its stack
            layer = stack_boxes_without_image(dataset.annotation_path(sample), annotation, stamp, report=False)
            layer[1]["metadata"][conventions.STACK_FOLDER] = str(path)
            stack_layers.append(layer)
            lone.append(dataset.annotation_path(sample))
            continue
        if dtype is not None:
            dtypes.append(dtype)
        images.append(sample.image)
        planes.append(None)
        sizes.append(size)
        annotations.append(annotation)
        targets.append(dataset.annotation_path(sample))
        stamps.append(stamp)

    if skipped:
        report_skipped(path, skipped)
    report_stacks(stacks)
    report_paged_stacks(path, paged, len(annotations))
    report_folder_stacks(path, [(p, shape) for p, shape, _ in stack_names], len(annotations),
                         reasons=[reason for _, _, reason in stack_names])
    if lone:
        _report(f"{path.name}: {len(lone)} stack annotation file(s) without their stack shown plane by plane, each "
                "as its own box layer: " + "; ".join(p.name for p in lone[:10])
                + (f"; and {len(lone) - 10} more" if len(lone) > 10 else ""))
    # every image layer of the folder knows its stacks of their own layers (Predict's folder mode predicts them all)
    listed = [str(p) for p, _, _ in stack_names]
    for _, kwargs, kind in stack_layers:
        if kind == "image":
            kwargs["metadata"][conventions.FOLDER_STACKS] = listed
    if not annotations and stack_layers:
        return stack_layers
    if not annotations:
        raise DatasetError(path, "nothing could be read: " + "; ".join(f"{p.name}: {r}" for p, r in skipped[:5]))

    metadata = {
        conventions.SOURCE_IMAGES: [str(image) if image else None for image in images],
        conventions.ANNOTATION_FILES: [str(target) for target in targets],
        conventions.ANNOTATION_STAMPS: stamps,  # so a labeling session sees what another program changed since
        conventions.DATASET_ROOT: str(path),
    }
    store = None
    if paged:  # every page's boxes, a stack's planes saved to its one file: a FolderLabelStore
        metadata[conventions.SOURCE_PLANES] = [None if plane is None else list(plane) for plane in planes]
        store = FolderLabelStore(annotations, targets, planes, shapes, classes=class_list(annotations),
                                 stamps=stamps, sizes=[tuple(size) if size else None for size in sizes],
                                 labeled=labeled)
    layers = dataset_layers(path, images, sizes, dtypes, annotations, metadata, planes=planes if paged else None,
                            store=store)
    for _, kwargs, kind in layers:
        if kind == "image":
            kwargs["metadata"][conventions.FOLDER_STACKS] = listed
    # the stacks first: the folder's box layer stays the one on top (the active one), as without stacks
    return stack_layers + layers


class StackAsPages:
    """A stack of a dataset folder as pages of the folder (see :func:`stack_pages`)."""

    def __init__(self, shape, size, dtype, annotations, labeled, stamp):
        self.shape = tuple(shape)  # its leading dimensions
        self.planes = list(itertools.product(*(range(side) for side in self.shape)))  # in file order
        self.size = tuple(size)  # (height, width) of a plane
        self.dtype = dtype
        self.annotations = annotations  # one per plane, in the order of ``planes``
        self.labeled = labeled  # positions of the labeled planes
        self.stamp = stamp


def stack_pages(path: Path, annotation_path: Path | None, target: Path) -> StackAsPages | str:
    """A stack of a dataset folder as pages of the folder: its planes (two or more leading
    dimensions, such as t and z: every plane in file order, the last dimension fastest), each a
    2-D image of the folder's one image stack; or, when it cannot be (a microscope's channels,
    planes larger than :data:`LARGE_IMAGE_SIDE`), the reason, and it opens as its own layers.

    Raises
    ------
    AnnotationError
        When its annotation file is not a stack's (boxes without ``planes``) or names planes
        that it does not have.
    """
    layout = series_layout(path)
    if layout is None:
        raise ImageReadError(path, "not a readable stack")
    if layout.channel_axis == "C":
        return f"{layout.shape[layout.axes.index('C')]} channels (C): one layer per channel"
    size = layout.size
    if max(size) > LARGE_IMAGE_SIDE:
        return f"planes of {size[0]} x {size[1]} pixels, read by region in their own layers"
    shape = layout.leading
    stamp = file_stamp(target)
    annotation = load_annotation(annotation_path) if annotation_path else Annotation()
    if not annotation.is_stack:
        if len(annotation):
            raise AnnotationError(annotation_path, f"boxes without 'planes', but {path.name} is a stack")
        annotation = Annotation(classes=annotation.classes, planes=np.zeros((0, len(shape)), dtype=np.int64))
    if annotation.planes.shape[1] != len(shape):
        raise AnnotationError(
            annotation_path, f"planes have {annotation.planes.shape[1]} leading coordinates, {path.name} has {len(shape)}")
    outside = (annotation.labeled_planes >= np.array(shape)).any(axis=1)
    if outside.any():
        raise AnnotationError(annotation_path, f"planes {annotation.labeled_planes[outside][:5].tolist()} lie outside "
                                               f"{path.name}'s {shape}")
    per_plane = [_clipped(plane, size) for plane in split_planes(annotation, shape)]
    labeled = sorted({plane_index(plane, shape) for plane in annotation.labeled_planes})
    dtype = np.dtype(layout.dtype) if layout.dtype is not None else open_stack_array(path).dtype
    return StackAsPages(shape, size, dtype, per_plane, labeled, stamp)


def dataset_layers(path: Path, images, sizes, dtypes, annotations, metadata: dict, *, classes=None,
                   name: str | None = None, planes=None, store=None) -> list[tuple]:
    """A lazy image stack (when every image is a file) and one box layer of every image's boxes.

    ``images`` are the image files (None where unknown), ``sizes`` their
    ``(height, width)`` (None where unknown: the boxes' extent then), ``dtypes``
    those of the image files; ``metadata`` goes to the box layer, and its
    :data:`~napari_faster_rcnn.layers.conventions.SOURCE_IMAGES` to the image layer too.
    ``planes``: per image, None or the plane of the stack it is (read lazily, that plane only);
    ``store``: a :class:`~napari_faster_rcnn.core.data.labeling.FolderLabelStore` of every page
    (a folder with stacks' planes): the box layer is paged from it, and saving it writes each
    stack's one file.
    """
    has_images = all(image is not None for image in images)
    if not has_images:
        sizes = [size or _extent(annotation) for size, annotation in zip(sizes, annotations)]
    folder_name = path.name or str(path)
    predictions = any(a.scores is not None for a in annotations)
    crowded = any(conventions.windowed(len(a)) for a in annotations)
    shapes = conventions.shapes_layer_data(
        [_empty_like(a) for a in annotations] if crowded or store is not None else annotations,
        stacked=True,
        name=name or f"{folder_name} {'predictions' if predictions else 'boxes'}",
        classes=class_list(annotations, known=classes or ()),
        predictions=predictions,
        image_sizes=sizes,
        metadata=metadata,
    )
    if store is not None:  # pages of stacks' planes: the boxes paged from the folder's store
        held = HeldFolder(store)
        _attach(held, hold(shapes[1]["metadata"], held), make=held.pager)
    elif crowded:  # an image too crowded for napari's Shapes layer: the boxes are paged in by a SliceBoxes
        held = box_window.HeldBoxes([_clipped(a, size) for a, size in zip(annotations, sizes)])
        _attach(held, hold(shapes[1]["metadata"], held))
    layers = []
    if has_images:
        dtype = np.result_type(*dtypes)
        large = max(max(int(side) for side in size) for size in sizes) > LARGE_IMAGE_SIDE
        if large:  # read by region, padded per chunk: never an image padded to the largest whole
            stack = region_stack_levels(images, sizes, dtype=dtype, on_error=_warn_unreadable)
            if len(stack) == 1:
                stack = stack[0]
        else:
            stack = lazy_image_stack(images, sizes, dtype=dtype, on_error=_warn_unreadable, planes=planes)
        image_meta = {
            conventions.SOURCE_IMAGES: metadata[conventions.SOURCE_IMAGES],
            **({conventions.SOURCE_PLANES: metadata[conventions.SOURCE_PLANES]}
               if conventions.SOURCE_PLANES in metadata else {}),
            conventions.IMAGE_SIZES: [list(s) for s in sizes],
            conventions.DATASET_ROOT: str(path),
        }
        image_kwargs = {"name": folder_name, "rgb": True, "metadata": image_meta}
        if large and isinstance(stack, list):
            image_kwargs["multiscale"] = True
        if not large:  # pages: not kept in napari's dask cache (see PAGES_CACHED)
            image_kwargs["cache"] = PAGES_CACHED
        if dtype == np.uint8:
            image_kwargs["contrast_limits"] = [0, 255]  # no scan of the lazy stack
        elif planes is not None:  # (16-bit planes: a few pages' range, never a scan of every page)
            image_kwargs["contrast_limits"] = _first_pages_limits(stack, images, planes)
        layers.append((stack, image_kwargs, "image"))
    layers.append(shapes)
    return layers


def _first_pages_limits(stack, images, planes, stacks: int = 3) -> list:
    """One contrast for every page: the range of the first page and of the first plane of the first
    ``stacks`` stacks (so that 16-bit planes are not white under 8-bit images' range); a few pages read,
    each from its file as it is (a plane's own values, not the page made RGB and padded: two 2048 px
    pages of that were 50 MB read and dropped while the folder opened)."""
    first = {}
    for index, (image, plane) in enumerate(zip(images, planes)):
        if plane is not None and image not in first and len(first) < stacks:
            first[image] = index
    lows, highs = [], []
    for index in dict.fromkeys([0, *first.values()]):
        try:
            if planes[index] is None:
                sample = read_image(images[index])
            else:
                sample = np.asarray(open_stack_array(images[index])[tuple(int(v) for v in planes[index])])
                if sample.dtype.kind == "b" or (sample.ndim == 3 and sample.shape[-1] in (2, 4)):
                    sample = read_plane(images[index], planes[index])  # (as the page shows it: no alpha, 0/255)
        except (ImageReadError, ValueError, OSError):
            sample = np.asarray(stack[index])  # (the page as napari shows it: zeros for an unreadable one)
        lows.append(float(sample.min()))
        highs.append(float(sample.max()))
    low, high = min(lows), max(highs)
    return [low, high if high > low else low + 1]


def _empty_like(annotation: Annotation) -> Annotation:
    return Annotation(boxes=np.zeros((0, 4)), labels=[], scores=None if annotation.scores is None else np.zeros(0),
                      classes=annotation.classes)


def _clipped(annotation: Annotation, size) -> Annotation:
    """``annotation`` with its boxes cut at the image border (as a box layer shows them and the writer saves)."""
    if size is None:
        return annotation
    return Annotation(boxes=clip_boxes(annotation.boxes, *size), labels=list(annotation.labels),
                      scores=annotation.scores, classes=annotation.classes)


def _attach(held, key: str, make=None) -> None:
    """Page the layer tied to ``held`` once it is in the viewer that is opening it (napari's current one);
    ``make(viewer, layer)`` makes the paging model (default: a SliceBoxes)."""
    try:
        from napari import current_viewer

        viewer = current_viewer()
    except ImportError:  # pragma: no cover - napari is a dependency
        viewer = None
    if viewer is not None:
        attach_when_added(viewer, key, held, make=make)


def _extent(annotation: Annotation) -> tuple[int, int]:
    if len(annotation) == 0:
        return (1, 1)
    return (int(np.ceil(annotation.boxes[:, 3].max())), int(np.ceil(annotation.boxes[:, 2].max())))


def report_skipped(folder: Path, skipped: list) -> None:
    lines = [f"{p.name}: {reason}" for p, reason in skipped]
    message = f"Opened {folder.name} without {len(skipped)} file(s): " + "; ".join(lines[:10])
    if len(lines) > 10:
        message += f"; and {len(lines) - 10} more"
    logger.warning(message)
    try:
        from napari.utils.notifications import show_warning

        show_warning(message)
    except ImportError:  # pragma: no cover - napari is a dependency
        pass


def report_stacks(images: list) -> None:
    """Say in the viewer which images are stacks shown as their first page.

    ``images`` are ``(path, pages)``; those of one page are left out. The log
    has each already (from :func:`~napari_faster_rcnn.core.data.images.image_header`).
    """
    stacks = [(Path(p), pages) for p, pages in images if pages > 1]
    if not stacks:
        return
    lines = [f"{p.name}: page 1 of {pages}" for p, pages in stacks]
    message = (f"{len(stacks)} multi-page image(s) shown as their first page (stacks are not supported yet): "
               + "; ".join(lines[:10]) + (f"; and {len(lines) - 10} more" if len(lines) > 10 else ""))
    try:
        from napari.utils.notifications import show_warning

        show_warning(message)
    except ImportError:  # pragma: no cover - napari is a dependency
        logger.warning(message)


def report_paged_stacks(folder: Path, stacks: list, pages: int) -> None:
    """Say in the viewer which stacks of a dataset folder are pages of it: ``stacks`` are
    ``(path, leading dimensions, first page)``; ``pages`` the folder's pages in all."""
    if not stacks:
        return
    lines = []
    for path, shape, first in stacks:
        count = int(np.prod(shape))
        flat = " (t, z ... in file order, the last fastest)" if len(shape) > 1 else ""
        lines.append(f"{path.name}: pages {first} to {first + count - 1} ({' x '.join(map(str, shape))} planes{flat})")
    _report(f"{folder.name}: {pages} pages; the planes of {len(stacks)} stack(s) are pages of the folder, each "
            "stack saved to its one file: " + "; ".join(lines[:10])
            + (f"; and {len(lines) - 10} more" if len(lines) > 10 else ""))


def report_folder_stacks(folder: Path, stacks: list, images: int = 0, reasons=None) -> None:
    """Say in the viewer that the stacks of a dataset folder opened as their own layers.

    ``stacks`` are ``(path, leading dimensions)``. Each stack is an image layer and a box layer
    of its own, paged plane by plane by the dims slider, saved to its one annotation file; the
    folder's layers hold its 2-D images (``images`` of them). The slider is napari's one: a stack's
    first leading dimension and the folder's image axis are the same slider, so where both have a
    picture the layer above hides the one below.
    """
    if not stacks:
        return
    reasons = list(reasons or [None] * len(stacks))
    lines = [f"{p.name} ({' x '.join(str(side) for side in shape)} planes" + (f"; {why}" if why else "") + ")"
             for (p, shape), why in zip(stacks, reasons)]
    message = (f"{folder.name}: {len(stacks)} stack(s) that cannot be pages of the folder opened as their own "
               "image and box layers, paged plane "
               "by plane by the slider and saved to their own file: " + "; ".join(lines[:10])
               + (f"; and {len(lines) - 10} more" if len(lines) > 10 else ""))
    if images or len(stacks) > 1:
        at = "" if not images else ", the folder's image at 0" if images == 1 else f", the folder's images at 0 to {images - 1}"
        message += f" (one slider for all{at}: hide the layers above a stack to see its planes there)"
    _report(message)


def _report(message: str) -> None:
    """Log ``message`` and show it in the viewer (an information, not a warning)."""
    logger.info(message)
    try:
        from napari.utils.notifications import show_info

        show_info(message)
    except ImportError:  # pragma: no cover - napari is a dependency
        pass


def _warn_unreadable(error: ImageReadError) -> None:
    logger.warning(str(error))
