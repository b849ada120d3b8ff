"""What the "Predict" widget predicts, and the predictions layer it makes of the result.

- :func:`layer_target`: the images of an image layer to predict, the current
  one or the whole stack, as :class:`PredictionTarget` (image files where the
  layer's metadata names them, which gives each image at its own size rather
  than padded into the stack, else the layer's pixels);
- :func:`open_folder_images`: a folder's images as the image stack layer the
  reader makes of it (or the one already open);
- :func:`add_predictions`: the records of a run as a predictions layer beside
  its image: the raw detections behind it (:class:`~napari_faster_rcnn.layers.predictions.PredictionPages`,
  so "Tune predictions" filters them without running the model again), the
  chosen thresholds applied, colours by class, the score as text, the image
  index as the stack coordinate, and ``metadata`` naming the source images,
  so that saving writes one file per image and "Evaluate" pairs it with the
  labels by file name. No annotation files are named: saving asks where, so
  no label file is overwritten by predictions.

A stack read as data (time-lapse, z stack: an image layer with ``plane_dims`` in its metadata,
or any image layer of 4 or more dimensions) is predicted plane by plane: the plane shown, every
plane, or those a planes text chooses (``"3:7"``, see :mod:`~napari_faster_rcnn.core.prediction.stacks`);
its predictions layer is a stack's, whose boxes carry their planes
(:func:`~napari_faster_rcnn.layers.predictions.add_stack_prediction_layer`).

No Qt here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.folders import DatasetError
from napari_faster_rcnn.core.prediction.stacks import StackPlane, select_planes
from napari_faster_rcnn.core.prediction.thresholds import Thresholds
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.conventions import is_boxes
from napari_faster_rcnn.layers.folder_reading import read_dataset_folder
from napari_faster_rcnn.layers.predictions import add_prediction_layer, add_stack_prediction_layer
from napari_faster_rcnn.layers.stack_reading import read_stack_file

#: ``metadata[CHECKPOINT]`` of a predictions layer: the checkpoint that predicted it
CHECKPOINT = "checkpoint"


@dataclass
class PredictionTarget:
    """Images to predict and where their predictions go in the viewer.

    Attributes
    ----------
    image_layer
        The image layer they come from.
    images : list
        Per image, its file (a Path) or its pixels (an array).
    sources : list of str or None
        Per image, its file (None where it has none).
    sizes : list of (height, width)
    first : int
        The index in the image layer's stack of the first image (0 for the whole stack).
    stacked : bool
        The layer has a stack axis (a 3-D layer), even for one image of a stack.
    planes : list of tuple or None
        For a stack read as data (time, z): each image's plane (``images`` are
        :class:`~napari_faster_rcnn.core.prediction.stacks.StackPlane`); None otherwise.
    plane_dims : int
        The stack's leading dimensions (0 for images).
    """

    image_layer: object
    images: list
    sources: list[str | None]
    sizes: list[tuple[int, int]]
    first: int = 0
    stacked: bool = False
    metadata: dict = field(default_factory=dict)
    #: For a stack read as data: the leading coordinates of each plane predicted (None: images)
    planes: list | None = None
    plane_dims: int = 0
    #: A folder's run (see :func:`folder_target`): the targets it joins, each its own predictions layer
    parts: list | None = None

    def __len__(self) -> int:
        return len(self.images)


def is_image_layer(layer) -> bool:
    from napari.layers import Image

    return isinstance(layer, Image)


def current_index(viewer, layer) -> int:
    """The index in ``layer``'s stack of the image the viewer shows."""
    position = layer.world_to_data(viewer.dims.point)
    count = layer.data.shape[0]
    return int(np.clip(round(float(position[0])), 0, count - 1))


def stack_plane_dims(layer) -> int:
    """The leading dimensions (time, z) of a stack read as data: from the reader's metadata, else
    those of an image layer of 4 or more dimensions; 0 for a 2-D image or a folder's stack of them."""
    dims = layer.metadata.get(conventions.PLANE_DIMS)
    if dims:
        return int(dims)
    return layer.ndim - 2 if layer.ndim >= 4 and not getattr(layer, "multiscale", False) else 0


def layer_target(viewer, layer, whole_stack: bool, planes: str | None = None) -> PredictionTarget:
    """The current image of ``layer``, or every image of its stack; for a stack read as data (see
    :func:`stack_plane_dims`) the plane shown, every plane, or the planes ``planes`` chooses.

    Raises
    ------
    ValueError
        For a layer that is not a 2-D image or a stack of them; for ``planes`` on a layer
        that is not a stack read as data, or that chooses no plane.
    """
    if stack_plane_dims(layer):
        return stack_target(viewer, layer, whole_stack, planes)
    if planes is not None:
        raise ValueError(f"{layer.name!r} is not a stack read as data (time-lapse, z stack): choose the current "
                         "image or the whole stack")
    # a multiscale layer predicts on its full resolution: its file, read tile by tile, or level 0
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    spatial = layer.ndim  # napari counts the colour channels of an RGB layer out
    if spatial not in (2, 3):
        raise ValueError(f"{layer.name!r} has {spatial} dimensions; predict works on 2-D images and stacks of them")
    stacked = spatial == 3
    count = data.shape[0] if stacked else 1
    sources = list(layer.metadata.get(conventions.SOURCE_IMAGES) or [])
    sizes = list(layer.metadata.get(conventions.IMAGE_SIZES) or [])
    if len(sources) != count:
        sources = [None] * count
    if len(sizes) != count:
        shape = data.shape[1:3] if stacked else data.shape[:2]
        sizes = [tuple(int(v) for v in shape)] * count
    indices = range(count) if whole_stack or not stacked else [current_index(viewer, layer)]
    images = []
    planes = [conventions.source_plane(layer.metadata, index) for index in range(count)]
    for index in indices:
        source = sources[index]
        if source and planes[index] is not None and Path(source).exists():  # a page that is a stack's plane
            images.append(StackPlane(Path(source), planes[index]))
        elif source and Path(source).is_file():
            images.append(Path(source))
        else:
            sources[index] = None
            images.append(data[index] if stacked else data)
    metadata = {key: layer.metadata[key] for key in (conventions.DATASET_ROOT,) if key in layer.metadata}
    if any(planes[index] is not None for index in indices):  # which plane of its stack each page is
        metadata[conventions.SOURCE_PLANES] = [None if planes[i] is None else list(planes[i]) for i in indices]
    return PredictionTarget(
        image_layer=layer,
        images=images,
        sources=[sources[i] for i in indices],
        sizes=[tuple(int(v) for v in sizes[i]) for i in indices],
        first=indices[0],
        stacked=stacked,
        metadata=metadata,
    )


def stack_target(viewer, layer, whole_stack: bool, planes: str | None = None) -> PredictionTarget:
    """The planes of a stack read as data to predict (see :func:`layer_target`)."""
    from napari_faster_rcnn.core.data.stack_files import stack_shape

    dims = stack_plane_dims(layer)
    data = layer.data
    lead = tuple(int(side) for side in data.shape[:dims])
    size = tuple(int(side) for side in data.shape[dims:dims + 2])
    if planes is not None:
        chosen = select_planes(lead, planes)
        if not chosen:
            raise ValueError(f"planes {planes}: no plane of {layer.name!r} ({lead[0]} along its first dimension)")
    elif whole_stack:
        chosen = select_planes(lead)
    else:
        position = layer.world_to_data(viewer.dims.point)[:dims]
        chosen = [tuple(int(np.clip(round(float(v)), 0, side - 1)) for v, side in zip(position, lead))]
    sources = [s for s in layer.metadata.get(conventions.SOURCE_IMAGES) or [] if s]
    path = Path(sources[0]) if len(sources) == 1 else None
    # read plane by plane from its file (where tifffile reads it as this stack), else from the layer's pixels
    source = path if path is not None and path.is_file() and stack_shape(path) == lead else data
    metadata = {key: layer.metadata[key] for key in (conventions.DATASET_ROOT,) if key in layer.metadata}
    return PredictionTarget(
        image_layer=layer,
        images=[StackPlane(source, plane) for plane in chosen],
        sources=[str(path) if path is not None else None] * len(chosen),
        sizes=[size] * len(chosen),
        first=0,
        stacked=True,
        metadata=metadata,
        planes=chosen,
        plane_dims=dims,
    )


def open_folder_images(viewer, folder: str | Path):
    """The image stack layer of a dataset folder: the one already open, or a new one as the reader makes it.

    Returns the folder's image stack layer (its 2-D images), or, for a folder of stacks alone, the image
    layer of its first stack. The image layers of the folder's stacks (see :func:`open_folder_layers`) are
    opened with it.

    Raises
    ------
    ValueError
        (``DatasetError``) naming the folder when it has no readable images.
    """
    images, stacks = open_folder_layers(viewer, folder)
    return images if images is not None else stacks[0]


def open_folder_layers(viewer, folder: str | Path) -> tuple:
    """``(images, stacks)``: a dataset folder's image stack layer (its 2-D images; None when it has none)
    and one image layer per stack of the folder (time-lapse, z stack; the first channel's of a
    multichannel one): those already open, or new ones as the reader makes them.

    Raises
    ------
    ValueError
        (``DatasetError``) naming the folder when it has no readable images.
    """
    folder = Path(folder)
    images, stacks = _open_folder_layers(viewer, folder)
    if images is not None or stacks:
        shown = {source for layer in stacks for source in layer.metadata.get(conventions.SOURCE_IMAGES) or ()}
        listed = dict.fromkeys(p for layer in ([images] if images is not None else []) + stacks
                               for p in layer.metadata.get(conventions.FOLDER_STACKS) or [])
        closed = [p for p in listed if p not in shown]
        for path in closed:  # a stack of the folder whose layers were closed: its image layer again
            data, kwargs, _ = read_stack_file(Path(path))[0]
            kwargs["metadata"][conventions.STACK_FOLDER] = str(folder)
            viewer.add_image(data, **kwargs)
        return _open_folder_layers(viewer, folder) if closed else (images, stacks)
    opened = [layer for layer in read_dataset_folder(folder) if layer[2] == "image"]
    if not opened:
        raise DatasetError(folder, "no images to predict (a folder of annotation files alone)")
    for data, kwargs, _ in opened:
        viewer.add_image(data, **kwargs)  # (a list of layers for a multichannel stack: channel_axis)
    return _open_folder_layers(viewer, folder)


def _open_folder_layers(viewer, folder: Path) -> tuple:
    images, stacks, seen = None, [], set()
    for layer in viewer.layers:
        if not is_image_layer(layer):
            continue
        if images is None and layer.metadata.get(conventions.DATASET_ROOT) == str(folder):
            images = layer
        sources = tuple(layer.metadata.get(conventions.SOURCE_IMAGES) or ())
        if layer.metadata.get(conventions.STACK_FOLDER) == str(folder) and sources not in seen:
            seen.add(sources)  # one layer per stack (a multichannel stack has one per channel)
            stacks.append(layer)
    return images, stacks


def folder_target(viewer, folder: str | Path) -> PredictionTarget:
    """Every image of a dataset folder and every plane of each of its stacks, as one run.

    Its ``parts`` are the folder's 2-D images (one target, on the folder's image stack layer) and each
    stack's planes (one target per stack, on the stack's image layer); :func:`add_predictions` gives each
    part its own predictions layer: the folder's, and a stack's predictions layer per stack.
    """
    images, stacks = open_folder_layers(viewer, folder)
    parts = ([layer_target(viewer, images, whole_stack=True)] if images is not None else []) + [
        stack_target(viewer, layer, whole_stack=True) for layer in stacks]
    if len(parts) == 1:
        return parts[0]
    return PredictionTarget(
        image_layer=parts[0].image_layer,
        images=[image for part in parts for image in part.images],
        sources=[source for part in parts for source in part.sources],
        sizes=[size for part in parts for size in part.sizes],
        stacked=True,
        metadata=dict(parts[0].metadata),
        parts=parts,
    )


def known_colors(viewer) -> dict[str, str]:
    """The class colours the box layers in the viewer use (so predictions match the labels)."""
    colors: dict[str, str] = {}
    for layer in viewer.layers:
        if is_boxes(layer):
            for name, color in (layer.metadata.get(conventions.CLASS_COLORS) or {}).items():
                colors.setdefault(name, color)
    return colors


def raw_annotations(records: Sequence, count: int) -> list[Annotation]:
    """One annotation per image from a run's records (empty where an image failed or was not reached)."""
    raw = [Annotation(np.zeros((0, 4)), [], np.zeros(0)) for _ in range(count)]
    for record in records:
        if record.annotation is not None and record.index < count:
            raw[record.index] = record.annotation
    return raw


def add_predictions(
    viewer,
    target: PredictionTarget,
    records: Sequence,
    classes: Sequence[str],
    thresholds: Thresholds,
    *,
    count: int | None = None,
    checkpoint: str | None = None,
):
    """Add the predictions layer of a run over ``target`` (its first ``count`` images) and return it
    (for a folder's run with stacks, :func:`folder_target`: the first of its layers; see
    :func:`add_folder_predictions` for them all)."""
    count = len(target) if count is None else count
    if target.parts is not None:
        return add_folder_predictions(viewer, target, records, classes, thresholds, count=count,
                                      checkpoint=checkpoint)[0]
    if target.planes is not None:
        return _add_stack_predictions(viewer, target, records, classes, thresholds, count, checkpoint)
    raw = raw_annotations(records, count)
    sizes = list(target.sizes[:count])
    for record in records:
        if record.image_size is not None and record.index < count:
            sizes[record.index] = record.image_size
    metadata = {**target.metadata, conventions.SOURCE_IMAGES: list(target.sources[:count])}
    if conventions.SOURCE_PLANES in metadata:
        metadata[conventions.SOURCE_PLANES] = list(metadata[conventions.SOURCE_PLANES][:count])
    if checkpoint:
        metadata[CHECKPOINT] = str(checkpoint)
    image = target.image_layer
    name = f"{image.name} predictions" if target.first == 0 or not target.stacked else \
        f"{image.name} {_image_name(target)} predictions"
    layer = add_prediction_layer(viewer, raw, thresholds, name=name, classes=classes, image_sizes=sizes,
                                 metadata=metadata, stacked=target.stacked, colors=known_colors(viewer))
    scale, translate = np.asarray(image.scale, float), np.asarray(image.translate, float).copy()
    if target.stacked:
        translate[0] += target.first * scale[0]  # one image of a stack sits on its slice
    layer.scale, layer.translate = scale, translate
    return layer


def add_folder_predictions(viewer, target: PredictionTarget, records: Sequence, classes: Sequence[str],
                           thresholds: Thresholds, *, count: int | None = None, checkpoint: str | None = None) -> list:
    """The predictions layers of a run over a folder's target (:func:`folder_target`): one per part
    that the run reached (its first ``count`` images); a target without parts gives its one layer."""
    count = len(target) if count is None else count
    if target.parts is None:
        return [add_predictions(viewer, target, records, classes, thresholds, count=count, checkpoint=checkpoint)]
    layers, offset = [], 0
    for part in target.parts:
        reached = int(np.clip(count - offset, 0, len(part)))
        if reached:
            own = [replace(record, index=record.index - offset) for record in records
                   if offset <= record.index < offset + len(part)]
            layers.append(add_predictions(viewer, part, own, classes, thresholds, count=reached, checkpoint=checkpoint))
        offset += len(part)
    return layers


def _add_stack_predictions(viewer, target: PredictionTarget, records, classes, thresholds, count: int, checkpoint):
    """A stack's predictions layer over its first ``count`` planes predicted, on the stack's image."""
    raw = raw_annotations(records, count)
    size = target.sizes[0]
    metadata = {**target.metadata, conventions.SOURCE_IMAGES: [target.sources[0]], conventions.IMAGE_SIZES: [list(size)]}
    if checkpoint:
        metadata[CHECKPOINT] = str(checkpoint)
    image = target.image_layer
    layer = add_stack_prediction_layer(viewer, raw, target.planes[:count], target.plane_dims, thresholds,
                                       name=f"{image.name} predictions", classes=classes, image_size=size,
                                       metadata=metadata, colors=known_colors(viewer))
    layer.scale, layer.translate = np.asarray(image.scale, float), np.asarray(image.translate, float)
    return layer


def _image_name(target: PredictionTarget) -> str:
    source = target.sources[0] if target.sources else None
    return Path(source).stem if source else f"#{target.first}"
