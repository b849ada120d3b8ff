"""A dataset folder of ours as layers (the reader's work for a folder): its 2-D images and the planes of
its stacks as the pages of ONE image layer and ONE box layer (see :mod:`.folder_pages`), a stack that
cannot be pages as layers of its own, and a stack's annotation file without its stack as a box layer.

``napari_faster_rcnn._reader.get_reader`` chooses :func:`read_dataset_folder` for a folder; a folder
in COCO, Pascal VOC or YOLO opens read-only through :func:`.interchange.read_foreign_folder` instead.
No Qt here.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, AnnotationError, class_list, load_annotation
from napari_faster_rcnn.core.data.folder_label_store import FolderLabelStore
from napari_faster_rcnn.core.data.folders import DatasetError, discover_dataset
from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.images import image_header
from napari_faster_rcnn.core.data.labeling import file_stamp
from napari_faster_rcnn.core.data.stack_files import open_stack_array, series_layout, stack_shape
from napari_faster_rcnn.core.data.stack_planes import plane_index, split_planes
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.folder_layers import dataset_layers
from napari_faster_rcnn.layers.reader_parts import clipped
from napari_faster_rcnn.layers.reader_reports import (
    report_folder_stacks,
    report_info,
    report_paged_stacks,
    report_skipped,
    report_stacks,
)
from napari_faster_rcnn.layers.reading import LARGE_IMAGE_SIDE
from napari_faster_rcnn.layers.stack_reading import read_stack_file, stack_boxes_without_image


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
    planes, shapes, labeled, paged, channel_counts = [], {}, [], [], []
    stack_layers, stack_names, lone = [], [], []
    for sample in dataset.samples:
        size = None
        dtype = None
        channels = 0
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
            size, dtype, channels = [header.height, header.width], header.dtype, header.channels
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
        channel_counts.append(channels)
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
        report_info(f"{path.name}: {len(lone)} stack annotation file(s) without their stack shown plane by plane, "
                    "each as its own box layer: " + "; ".join(p.name for p in lone[:10])
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
                            store=store, channels=channel_counts)
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
    planes larger than :data:`~.reading.LARGE_IMAGE_SIDE`), the reason, and it opens as its own layers.

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
    per_plane = [clipped(plane, size) for plane in split_planes(annotation, shape)]
    labeled = sorted({plane_index(plane, shape) for plane in annotation.labeled_planes})
    dtype = np.dtype(layout.dtype) if layout.dtype is not None else open_stack_array(path).dtype
    return StackAsPages(shape, size, dtype, per_plane, labeled, stamp)
