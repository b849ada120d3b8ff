"""An image file or an annotation file as image + box layers (the reader's work for one file): a 2-D
image whole, a large image (or any Zarr store) as a multiscale layer read by region, a crowded image's
boxes through a window, and the image of an annotation file found by its stem.

``napari_faster_rcnn._reader.get_reader`` chooses :func:`read_image_file` or
:func:`read_annotation_into_viewer` (:func:`read_annotation_file` less an image the viewer shows
already); a stack goes on to :func:`.stack_reading.read_stack_file`, a dataset
folder opens through :func:`.folder_reading.read_dataset_folder` (a folder in COCO, Pascal VOC or YOLO
through :func:`.interchange.read_foreign_folder`). No Qt here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import (
    Annotation,
    class_list,
    default_annotation_path,
    find_annotation_file,
    load_annotation,
)
from napari_faster_rcnn.core.data.display_levels import region_levels
from napari_faster_rcnn.core.data.folders import find_image_folder
from napari_faster_rcnn.core.data.image_files import is_image_file
from napari_faster_rcnn.core.data.images import image_header, read_image
from napari_faster_rcnn.core.data.labeling import file_stamp
from napari_faster_rcnn.core.data.regions import is_zarr_folder, open_regions
from napari_faster_rcnn.core.data.stack_files import open_stack_array, series_layout, stack_shape
from napari_faster_rcnn.layers import box_window, conventions
from napari_faster_rcnn.layers.paging_registry import hold
from napari_faster_rcnn.layers.reader_parts import (
    attach_held,
    box_layer_name,
    channel_names,
    channel_ranges,
    clipped,
    no_boxes_like,
    predictions_thresholds,
    tuned_pages,
    value_range,
)
from napari_faster_rcnn.layers.reader_reports import report_stacks
from napari_faster_rcnn.layers.stack_reading import read_stack_file, stack_boxes_without_image

#: An image with a side above this many pixels (or any Zarr store) opens as a multiscale layer
#: read by region: napari reads only the part on screen, at the level of detail the zoom needs.
LARGE_IMAGE_SIDE = 4096


def read_image_file(path) -> list[tuple]:
    """An image and its boxes (from ``STEM.pt``/``.json`` beside it or in ``../target``)."""
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    if stack_shape(path) is not None:  # a TIFF, OME-TIFF or Zarr stack
        return read_stack_file(path)
    image = image_layer_data(path)
    annotation_path = find_annotation_file(path)
    target = annotation_path or default_annotation_path(path)
    stamp = file_stamp(target)  # before reading: a change while reading is caught, not missed
    annotation = load_annotation(annotation_path) if annotation_path else Annotation()
    return _single_image_layers(path, image, annotation, target, stamp)


def read_annotation_file(path, shown=frozenset()) -> list[tuple]:
    """An annotation's boxes, with its image when one of the same stem is found; ``shown``: the resolved
    paths of images the viewer shows already, whose boxes come without the image, its pixels unread."""
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
            name=box_layer_name(path.stem, annotation),
            metadata={conventions.ANNOTATION_FILES: [str(path)], conventions.SOURCE_IMAGES: [None], conventions.ANNOTATION_STAMPS: [stamp]},
        )
        return [layer]
    if annotation.is_stack and stack_shape(image_path) is not None:
        return read_stack_file(image_path, annotation_path=path)
    if str(image_path.resolve()) in shown:  # its size from its header, the image layer left out
        header = image_header(image_path, note_pages=False)
        return _single_image_layers(image_path, (None, (header.height, header.width), {}), annotation, path,
                                    stamp)[1:]
    return _single_image_layers(image_path, image_layer_data(image_path), annotation, path, stamp)


def read_annotation_into_viewer(path) -> list[tuple]:
    """:func:`read_annotation_file` for the reader: without the image layer when the viewer shows that
    image already (see :func:`without_open_images`)."""
    import napari

    viewer = napari.current_viewer()
    return without_open_images(read_annotation_file(path, shown_images(viewer)), viewer)


def without_open_images(layers: list[tuple], viewer) -> list[tuple]:
    """``layers`` less the image layers whose file ``viewer`` shows already (opened by this plugin or by
    napari's own reader): an annotation or predictions file opened beside its open image adds its
    boxes only, not a second copy of the image over the layers below it (the ground truth's boxes)."""
    if viewer is None:
        return layers
    shown = shown_images(viewer)

    def open_already(data: tuple) -> bool:
        sources = data[1].get("metadata", {}).get(conventions.SOURCE_IMAGES) or [None]
        return data[2] == "image" and all(source is not None and str(Path(source).resolve()) in shown
                                          for source in sources)

    return [data for data in layers if not open_already(data)]


def shown_images(viewer) -> set[str]:
    """The resolved paths of the image files ``viewer``'s image layers show (opened by this plugin or by
    napari's own reader); empty without a viewer."""
    from napari.layers import Image

    shown = set()
    for layer in viewer.layers if viewer is not None else ():
        if isinstance(layer, Image):
            sources = layer.metadata.get(conventions.SOURCE_IMAGES) or [layer.source.path]
            shown.update(str(Path(source).resolve()) for source in sources if source is not None)
    return shown


def image_layer_data(path: Path) -> tuple:
    """``(data, size, image layer options)`` of one image file: its pixels, or for a large
    image (see :data:`LARGE_IMAGE_SIDE`) and a Zarr store the lazy levels of a multiscale layer."""
    if is_zarr_folder(path):
        regions = open_regions(path)
    else:
        header = image_header(path)
        report_stacks([(path, header.pages)])
        if max(header.height, header.width) <= LARGE_IMAGE_SIDE:
            channels = microscope_channels(path)
            if channels is not None:
                return channels
            image = read_image(path)
            return image, image.shape[:2], {}
        regions = open_regions(path)
    levels = region_levels(regions, keep_channels=True)
    options = {"multiscale": len(levels) > 1, "contrast_limits": _contrast_limits(regions, levels)}
    if regions.microscope:  # a layer per channel, as a small image of channels opens (microscope_channels)
        options["channel_axis"] = 2
        options["name"] = channel_names(path.stem, regions.channels)
    return (levels if len(levels) > 1 else levels[0]), (regions.height, regions.width), options


def microscope_channels(path: Path) -> tuple | None:
    """A 2-D image with a microscope's channel axis (``C``: an OME-TIFF or ImageJ file of axes ``CYX``) as
    napari shows such an image, one layer per channel with a range of its own (as a stack with channels
    opens: :func:`.stack_reading.read_stack_file`), every channel whatever their number: ``(data, size,
    options)`` of :func:`image_layer_data`; None for any other image. Which channels the detector sees
    is the model's ``channels``, not the display's."""
    layout = series_layout(path)
    if layout is None or layout.channel_axis != "C" or layout.leading:
        return None
    pixels = np.asarray(open_stack_array(path))  # (height, width, channels)
    return pixels, pixels.shape[:2], {"channel_axis": 2, "contrast_limits": channel_ranges(pixels),
                                      "name": channel_names(path.stem, pixels.shape[-1])}


def _contrast_limits(regions, levels) -> list:
    """uint8: its range; else the range of the smallest level when the file has it, or of a
    central region: never a scan of the whole image."""
    if regions.dtype == np.uint8 and not regions.microscope:
        return [0, 255]
    height, width = levels[-1].shape[:2]
    if len(regions.level_shapes) > 1 and max(height, width) <= 2 * LARGE_IMAGE_SIDE and height * width <= 2**22:
        sample = np.asarray(levels[-1])
    else:
        cy, cx, half = regions.height // 2, regions.width // 2, 512
        sample = regions.read(cy - half, cy + half, cx - half, cx + half, keep_channels=True)
    return channel_ranges(sample) if regions.microscope else value_range(sample)  # (each channel its own)


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


def _single_image_layers(image_path: Path, image: tuple, annotation: Annotation, target: Path, stamp) -> list[tuple]:
    data, size, options = image
    size = tuple(int(side) for side in size)
    image_meta = {conventions.SOURCE_IMAGES: [str(image_path)], conventions.IMAGE_SIZES: [list(size)]}
    layer_options = {"name": image_path.stem, "rgb": True, "metadata": image_meta, **options}
    if "channel_axis" in options:  # napari splits the channels into layers, each with the same metadata
        del layer_options["rgb"]
    image_layer = (data, layer_options, "image")
    metadata = {conventions.SOURCE_IMAGES: [str(image_path)], conventions.ANNOTATION_FILES: [str(target)],
                conventions.ANNOTATION_STAMPS: [stamp]}
    saved_thresholds = predictions_thresholds(metadata) if annotation.scores is not None else None
    if saved_thresholds is None and conventions.windowed(len(annotation)):
        return [image_layer, *_windowed_layers(annotation, size, box_layer_name(image_path.stem, annotation), metadata)]
    shapes = conventions.shapes_layer_data(
        [annotation if saved_thresholds is None else no_boxes_like(annotation)],
        stacked=False,
        name=box_layer_name(image_path.stem, annotation),
        classes=class_list([annotation]),
        image_sizes=[size],
        metadata=metadata,
    )
    if saved_thresholds is not None:  # raw detections (predict --raw): shown as the thresholds beside them keep them
        held = box_window.HeldBoxes([clipped(annotation, size)])
        attach_held(held, hold(shapes[1]["metadata"], held), make=tuned_pages(held, saved_thresholds))
    return [image_layer, shapes]


def _windowed_layers(annotation: Annotation, size, name: str, metadata: dict) -> list[tuple]:
    """A crowded image's boxes (see :mod:`~napari_faster_rcnn.layers.box_window`): a display-only picture of
    every box and an empty box layer, tied to the full annotation; once the box layer is in the viewer, a
    :class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes` fills it with the boxes around the view."""
    annotation = clipped(annotation, size)  # as the layer would show them
    display_id = box_window.new_display_id()
    shapes = conventions.shapes_layer_data(
        [no_boxes_like(annotation)], stacked=False, name=name, classes=class_list([annotation]), predictions=annotation.scores is not None,
        image_sizes=[size], metadata={**metadata, conventions.DISPLAY_ID: display_id},
    )
    colors = shapes[1]["metadata"][conventions.CLASS_COLORS]
    held = box_window.HeldBoxes([annotation])
    key = hold(shapes[1]["metadata"], held)
    display = box_window.display_layer_data(annotation, size, colors, box_window.display_name(name), display_id)
    attach_held(held, key)
    return [display, shapes]
