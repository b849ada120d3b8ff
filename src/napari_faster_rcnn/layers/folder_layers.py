"""A dataset folder's images and boxes as layers: ONE lazy image stack whose pages are the images (and
stacks' planes), read as napari shows them, and ONE box layer of every page's boxes.

Both readers of folders make their layers here: ours (:func:`.folder_reading.read_dataset_folder`)
and COCO, Pascal VOC and YOLO folders (:func:`.interchange.read_foreign_folder`). No Qt here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, class_list
from napari_faster_rcnn.core.data.display_levels import region_stack_levels
from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.image_stack import lazy_image_stack
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.stack_files import open_stack_array, read_plane
from napari_faster_rcnn.layers import box_window, conventions
from napari_faster_rcnn.layers.folder_pages import HeldFolder
from napari_faster_rcnn.layers.paging_registry import hold
from napari_faster_rcnn.layers.reader_parts import (
    attach_held,
    channel_names,
    channel_ranges,
    clipped,
    no_boxes_like,
    predictions_thresholds,
    tuned_pages,
)
from napari_faster_rcnn.layers.reader_reports import warn_unreadable
from napari_faster_rcnn.layers.reading import LARGE_IMAGE_SIDE

#: Whether napari keeps the pages of a folder's image layer in its dask cache once read. It does not:
#: that cache holds every page visited (2.5 GB after 100 pages of 2048 px RGB at 16 bits), and a page
#: turn paid for its bookkeeping (20 to 90 ms); the pages next to the one shown are read ahead instead
#: (see :mod:`~napari_faster_rcnn.core.data.read_ahead`).
PAGES_CACHED = False


def dataset_layers(path: Path, images, sizes, dtypes, annotations, metadata: dict, *, classes=None,
                   name: str | None = None, planes=None, store=None, channels=None) -> list[tuple]:
    """A lazy image stack (when every image is a file) and one box layer of every image's boxes.

    ``images`` are the image files (None where unknown), ``sizes`` their
    ``(height, width)`` (None where unknown: the boxes' extent then), ``dtypes``
    those of the image files; ``metadata`` goes to the box layer, and its
    :data:`~napari_faster_rcnn.layers.conventions.SOURCE_IMAGES` to the image layer too.
    ``planes``: per image, None or the plane of the stack it is (read lazily, that plane only);
    ``store``: a :class:`~napari_faster_rcnn.core.data.folder_label_store.FolderLabelStore` of every page
    (a folder with stacks' planes): the box layer is paged from it, and saving it writes each
    stack's one file. ``channels``: per image, the number of its microscope's channels (2-D images of
    axes ``CYX``; 0 for others): when all have some, the pages show one layer per channel (as many as the
    image with the most; zeros where an image has fewer), as one such image opens
    (:func:`~.reading.microscope_channels`).
    """
    has_images = all(image is not None for image in images)
    if not has_images:
        sizes = [size or _extent(annotation) for size, annotation in zip(sizes, annotations)]
    folder_name = path.name or str(path)
    predictions = any(a.scores is not None for a in annotations)
    crowded = any(conventions.windowed(len(a)) for a in annotations)
    saved_thresholds = predictions_thresholds(metadata) if predictions and store is None else None
    shapes = conventions.shapes_layer_data(
        [no_boxes_like(a) for a in annotations] if crowded or store is not None or saved_thresholds is not None
        else annotations,
        stacked=True,
        name=name or f"{folder_name} {'predictions' if predictions else 'boxes'}",
        classes=class_list(annotations, known=classes or ()),
        predictions=predictions,
        image_sizes=sizes,
        metadata=metadata,
    )
    if store is not None:  # pages of stacks' planes: the boxes paged from the folder's store
        held = HeldFolder(store)
        attach_held(held, hold(shapes[1]["metadata"], held), make=held.pager)
    elif saved_thresholds is not None:  # predictions with thresholds.json: shown as they pass (Tune's sliders)
        held = box_window.HeldBoxes([clipped(a, size) for a, size in zip(annotations, sizes)])
        attach_held(held, hold(shapes[1]["metadata"], held), make=tuned_pages(held, saved_thresholds))
    elif crowded:  # an image too crowded for napari's Shapes layer: the boxes are paged in by a SliceBoxes
        held = box_window.HeldBoxes([clipped(a, size) for a, size in zip(annotations, sizes)])
        attach_held(held, hold(shapes[1]["metadata"], held))
    layers = []
    if has_images:
        dtype = np.result_type(*dtypes)
        large = max(max(int(side) for side in size) for size in sizes) > LARGE_IMAGE_SIDE
        counts = set(channels or [0])
        # a layer per channel when every image has a microscope's channels (the most of them: zeros for an image
        # with fewer, as a well imaged with one stain less)
        microscope = max(counts) if 0 not in counts and not large and planes is None else None
        if large:  # read by region, padded per chunk: never an image padded to the largest whole
            stack = region_stack_levels(images, sizes, dtype=dtype, on_error=warn_unreadable)
            if len(stack) == 1:
                stack = stack[0]
        else:
            stack = lazy_image_stack(images, sizes, dtype=dtype, on_error=warn_unreadable, planes=planes,
                                     channels=microscope)
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
        if microscope:  # napari splits the channels into layers, each with the same metadata
            del image_kwargs["rgb"]
            image_kwargs.update(channel_axis=3, name=channel_names(folder_name, microscope),
                                contrast_limits=channel_ranges(np.asarray(stack[0])))  # (the first page read)
        elif dtype == np.uint8:
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


def _extent(annotation: Annotation) -> tuple[int, int]:
    if len(annotation) == 0:
        return (1, 1)
    return (int(np.ceil(annotation.boxes[:, 3].max())), int(np.ceil(annotation.boxes[:, 2].max())))
